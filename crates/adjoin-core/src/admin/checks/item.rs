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

/// The attribute checks of an item, each on its own line: account id, role ARN, DC IPs,
/// DNS name, then the item as the worker reads it (every other problem).
pub fn item_checks(item: &ConfigItem, account: &AccountId) -> (Vec<Check>, Option<AccountConfig>) {
    let mut checks = Vec::new();
    checks.push(match text(item, "accountId") {
        Some(id) if id == account.as_str() => Check::pass("account id", id),
        Some(id) => match AccountId::parse(&id) {
            Ok(_) => Check::fail(
                "account id",
                format!("accountId {id} is not the item's key {account}"),
                format!("set accountId to {account}"),
            ),
            Err(e) => Check::fail(
                "account id",
                e,
                "accountId is the 12-digit member account id",
            ),
        },
        None => Check::fail(
            "account id",
            "accountId is missing",
            format!("set accountId to {account}"),
        ),
    });
    checks.push(match text(item, "assumeRoleARN") {
        None => Check::pass(
            "role ARN",
            "no assumeRoleARN: instances are in the service's own account",
        ),
        Some(arn) => match config::role_account(&arn) {
            Ok(owner) if &owner == account => Check::pass("role ARN", arn),
            Ok(owner) => Check::fail(
                "role ARN",
                format!("{arn} belongs to account {owner}, not {account}"),
                format!("use the member stack's role in {account}: arn:aws:iam::{account}:role/…"),
            ),
            Err(e) => Check::fail(
                "role ARN",
                e,
                "assumeRoleARN is arn:aws:iam::ACCOUNT:role/NAME (the member stack's output)",
            ),
        },
    });
    let mut ips = Vec::new();
    let mut bad_ips = Vec::new();
    for name in ["dnsIP1", "dnsIP2"] {
        match text(item, name) {
            Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => ips.push(ip),
            Some(ip) => bad_ips.push(format!("{name} {ip:?} is not an IP address")),
            None if name == "dnsIP1" => bad_ips.push("dnsIP1 is missing".to_owned()),
            None => {}
        }
    }
    checks.push(if bad_ips.is_empty() {
        Check::pass("DC IPs", ips.join(", "))
    } else {
        Check::fail(
            "DC IPs",
            bad_ips.join("; "),
            "set dnsIP1 (and dnsIP2) to the domain controllers' IP addresses",
        )
    });
    checks.push(match text(item, "dnsName") {
        Some(name) if config::is_dns_name(&name) => Check::pass("DNS name", name),
        Some(name) => Check::fail(
            "DNS name",
            format!("{name:?} is not a DNS domain name"),
            "set dnsName to the directory's DNS name, e.g. corp.example.com",
        ),
        None => Check::fail(
            "DNS name",
            "dnsName is missing",
            "set dnsName to the directory's DNS name, e.g. corp.example.com",
        ),
    });
    let parsed = AccountConfig::from_item(item, account);
    checks.push(match &parsed {
        Ok(_) => Check::pass(
            "item valid",
            "every attribute reads as the service reads it",
        ),
        Err(problems) => Check::fail("item valid", problems.clone(), FIX_PUT),
    });
    (checks, parsed.ok())
}
