//! The join password on every error path.

use crate::join::debian_sandbox;
use crate::leave::tools_sandbox;
use crate::{config_with, join_with, leave_with};

/// Password-like values, the hard ones included.
pub(crate) const SECRETS: &[&str] = &[
    "S3cret-Join-P@ss",
    "pass word with  spaces",
    "it's \"quoted\" $(touch CANARY) `touch CANARY` ${HOME} \\ %s %n",
];

/// Every error path after the password is read, and the read itself: the value, and its
/// base64, appear nowhere in what the script prints (or in any argument).
#[test]
pub(crate) fn no_error_path_prints_the_password() {
    let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ad-join-AbCdEf";
    let secrets_manager = config_with("secretArn", arn);
    for secret in SECRETS {
        let json = |v: &str| serde_json::json!({ "password": v }).to_string();
        let cases: Vec<(&str, String, &[&str], i32, &str)> = vec![
            (
                "not JSON",
                (*secret).to_owned(),
                &[],
                12,
                "the join secret is not JSON",
            ),
            (
                "cut JSON",
                format!("{{\"password\": \"{secret}"),
                &[],
                12,
                "not JSON",
            ),
            (
                "no password key",
                serde_json::json!({ "pass": secret }).to_string(),
                &[],
                12,
                "no \"password\" string",
            ),
            (
                "not a string",
                serde_json::json!({ "password": [secret] }).to_string(),
                &[],
                12,
                "no \"password\" string",
            ),
            ("empty", json(""), &[], 12, "the join password is empty"),
            (
                "adcli exit 3",
                json(secret),
                &["join-exit=3", "echo-password"],
                13,
                "adcli exit 3",
            ),
            (
                "adcli exit 6",
                json(secret),
                &["refuse-join", "echo-password"],
                14,
                "adcli join refused (exit 6)",
            ),
            (
                "adcli exit 9",
                json(secret),
                &["join-exit=9", "echo-password"],
                14,
                "adcli join refused (exit 9)",
            ),
            (
                "add-member",
                json(secret),
                &["member-denied", "echo-password"],
                16,
                "not added to group(s)",
            ),
        ];
        for (case, content, flags, expected, says) in cases {
            let sandbox = debian_sandbox();
            let canary = sandbox.path("CANARY");
            sandbox.flag("secret", &content);
            for flag in flags {
                match flag.split_once('=') {
                    Some((name, value)) => sandbox.flag(name, value),
                    None => sandbox.flag(flag, ""),
                }
            }
            let (code, out) = sandbox.run(&join_with(&secrets_manager, "g"));
            assert_eq!(code, expected, "{case} {secret:?}: {out}");
            assert!(out.contains(says), "{case} {secret:?}: {out}");
            assert_absent(secret, &out, &sandbox.calls(), case);
            assert!(!canary.exists(), "{case}: the secret was executed");
        }
        // The tools host: kinit refusing the password.
        let sandbox = tools_sandbox();
        sandbox.flag("secret", &json(secret));
        sandbox.flag("kinit-fails", "");
        let (code, out) = sandbox.run(&leave_with(&secrets_manager));
        assert_eq!(code, 13, "{out}");
        assert!(
            out.contains("cannot authenticate as svc-join@EXAMPLE.TEST"),
            "{out}"
        );
        assert_absent(secret, &out, &sandbox.calls(), "kinit");
        assert!(
            sandbox.read("stdin.log").contains(secret),
            "kinit got it on stdin"
        );
    }
}

pub(crate) fn assert_absent(secret: &str, out: &str, calls: &str, case: &str) {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    let trimmed = secret.trim();
    for text in [out, calls] {
        assert!(!text.contains(trimmed), "{case}: {secret:?} in {text}");
        assert!(
            !text.contains(&encoded),
            "{case}: base64 of {secret:?} in {text}"
        );
    }
}
