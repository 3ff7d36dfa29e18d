//! The config item, checked as the service reads it.

use super::*;

pub(super) const FIX_PUT: &str =
    "write the item with `adjoin config put` (see README, Account config item)";

pub(super) fn text(item: &ConfigItem, name: &str) -> Option<String> {
    match item.get(name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// The lines of an item's check, each for its attributes, in order; the last line,
/// "item valid", holds every other problem.
const LINES: [(&str, &[&str]); 4] = [
    ("account id", &["accountId"]),
    ("role ARN", &["assumeRoleARN"]),
    ("DC IPs", &["dnsIP1", "dnsIP2"]),
    ("DNS name", &["dnsName"]),
];

/// The attribute checks of an item, each on its own line — account id, role ARN, DC
/// IPs, DNS name, then the item as a whole — from the one validation the service itself
/// applies ([`AccountConfig::from_item`]).
pub fn item_checks(item: &ConfigItem, account: &AccountId) -> (Vec<Check>, Option<AccountConfig>) {
    let parsed = AccountConfig::from_item(item, account);
    let problems = parsed
        .as_ref()
        .err()
        .map_or(&[][..], |e| e.problems.as_slice());
    let mut checks: Vec<Check> = LINES
        .iter()
        .map(|(name, attributes)| {
            let mine: Vec<_> = problems
                .iter()
                .filter(|p| attributes.contains(&p.attribute))
                .collect();
            match mine.first() {
                None => Check::pass(name, found(item, attributes)),
                Some(first) => Check::fail(
                    name,
                    mine.iter()
                        .map(|p| p.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    first.fix.clone(),
                ),
            }
        })
        .collect();
    checks.push(match &parsed {
        Ok(_) => Check::pass(
            "item valid",
            "every attribute reads as the service reads it",
        ),
        Err(invalid) => Check::fail(
            "item valid",
            invalid.to_string(),
            invalid
                .problems
                .iter()
                .find(|p| !LINES.iter().any(|(_, a)| a.contains(&p.attribute)))
                .map_or_else(|| FIX_PUT.to_owned(), |p| p.fix.clone()),
        ),
    });
    (checks, parsed.ok())
}

/// What a passing line found.
fn found(item: &ConfigItem, attributes: &[&str]) -> String {
    let values: Vec<String> = attributes.iter().filter_map(|a| text(item, a)).collect();
    match (values.is_empty(), attributes) {
        (true, ["assumeRoleARN"]) => {
            "no assumeRoleARN: instances are in the service's own account".to_owned()
        }
        _ => values.join(", "),
    }
}
