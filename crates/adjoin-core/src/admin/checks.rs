//! `adjoin config validate` and `adjoin check`: what each check finds, and the fix.
//!
//! Each check is a line: a name, a verdict, what was found and, when it did not pass,
//! what to do about it. A check whose prerequisite failed is skipped (it could not be
//! run), which is not a pass.

use serde::Serialize;

use crate::admin::{AdminPorts, AdminSessions, AgentInfo, parameter_name, reference_account};
use crate::config::{self, AccountConfig, ConfigItem, JoinMode, PasswordRef, RoleTarget, TagMatch};
use crate::error::Error;
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::{GROUP_TAG, Instance, OPT_OUT_TAG, Platform, group_tag_problem};
use crate::ports::{AccountPorts, ConfigStore, Sessions};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run: a check it depends on failed.
    Skip,
}

impl Verdict {
    /// ✓, ✗ or – .
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::Skip => "–",
        }
    }
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do, when the check did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skip(name: &'static str, because: &str) -> Self {
        Check {
            name,
            verdict: Verdict::Skip,
            detail: format!("not checked: {because}"),
            fix: None,
        }
    }
}

/// The lines of a validation or preflight, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict == Verdict::Pass)
    }

    fn push(&mut self, check: Check) -> bool {
        let passed = check.verdict == Verdict::Pass;
        self.checks.push(check);
        passed
    }

    /// The check called `name`, for tests and callers that want one.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

mod account;
mod instance;
mod item;

pub use account::*;
pub use instance::*;
pub use item::*;

#[cfg(test)]
mod tests;
