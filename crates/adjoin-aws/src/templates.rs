//! What real CloudFormation and IAM would refuse or silently drop, checked on the text of
//! `infra/*.yaml`, the scripts and the README's Deploy section. The emulator
//! (`tests/emulator/stacks.rs`) creates the stacks, but it does not evaluate `Rules`,
//! does not know which API a PowerShell cmdlet calls, and runs each stack in its own
//! account and Region, so the collisions and gaps between stacks are checked here.
//!
//! [`parse`] reads a template with serde_norway into [`Node`]s (CloudFormation's
//! short-form tags such as `!Ref` kept), and [`Env`] evaluates conditions and rule
//! assertions the way CloudFormation does, for given parameters, account and Region.

use std::collections::{BTreeMap, BTreeSet};

const CENTRAL: &str = include_str!("../../../infra/central.yaml");
const MEMBER: &str = include_str!("../../../infra/member.yaml");
const FORWARDER: &str = include_str!("../../../infra/region-forwarder.yaml");
const README: &str = include_str!("../../../README.md");

/// Every script the service sends, by file name. The test
/// `the_script_list_is_complete` keeps it in step with the directories.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "linux/common.sh",
        include_str!("../../../scripts/linux/common.sh"),
    ),
    (
        "linux/join.sh",
        include_str!("../../../scripts/linux/join.sh"),
    ),
    (
        "linux/leave.sh",
        include_str!("../../../scripts/linux/leave.sh"),
    ),
    (
        "linux/stage.sh",
        include_str!("../../../scripts/linux/stage.sh"),
    ),
    (
        "linux/tools.sh",
        include_str!("../../../scripts/linux/tools.sh"),
    ),
    (
        "windows/common.ps1",
        include_str!("../../../scripts/windows/common.ps1"),
    ),
    (
        "windows/join.ps1",
        include_str!("../../../scripts/windows/join.ps1"),
    ),
    (
        "windows/leave.ps1",
        include_str!("../../../scripts/windows/leave.ps1"),
    ),
    (
        "windows/stage.ps1",
        include_str!("../../../scripts/windows/stage.ps1"),
    ),
    (
        "windows/tools.ps1",
        include_str!("../../../scripts/windows/tools.ps1"),
    ),
];

// ------------------------------------------------------------------ the templates as nodes

/// A YAML node as the checks read it. Scalars stay text (numbers and booleans too, as
/// CloudFormation passes parameter values; an empty value is ""); a short-form tag such
/// as `!Ref` wraps the node it applies to. Long-form `Fn::` functions stay maps.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
    Tag(String, Box<Node>),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a dotted path of map keys; panics naming the path.
    fn at(&self, path: &str) -> &Node {
        path.split('.').fold(self, |node, key| {
            node.get(key)
                .unwrap_or_else(|| panic!("no {key:?} (of {path}) in {node:?}"))
        })
    }

    fn str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    fn items(&self) -> &[Node] {
        match self {
            Node::Seq(items) => items,
            _ => &[],
        }
    }

    fn entries(&self) -> &[(String, Node)] {
        match self {
            Node::Map(entries) => entries,
            _ => &[],
        }
    }

    /// `!Tag arg` → ("!Tag", arg).
    fn tag(&self) -> Option<(&str, &Node)> {
        match self {
            Node::Tag(t, n) => Some((t, n)),
            _ => None,
        }
    }

    /// The logical id of `!GetAtt Id.Attr` when Attr is `attr`.
    fn get_att(&self, attr: &str) -> Option<&str> {
        let (tag, arg) = self.tag()?;
        let (id, a) = arg.str()?.split_once('.')?;
        (tag == "!GetAtt" && a == attr).then_some(id)
    }

    fn is_ref(&self, name: &str) -> bool {
        self.tag() == Some(("!Ref", &Node::Str(name.to_owned())))
    }
}

/// `text` read by serde_norway, as a [`Node`].
fn parse(text: &str) -> Node {
    node(serde_norway::from_str(text).expect("YAML"))
}

fn node(value: serde_norway::Value) -> Node {
    use serde_norway::Value;
    match value {
        Value::Null => Node::Str(String::new()),
        Value::Bool(b) => Node::Str(b.to_string()),
        Value::Number(n) => Node::Str(n.to_string()),
        Value::String(s) => Node::Str(s),
        Value::Sequence(items) => Node::Seq(items.into_iter().map(node).collect()),
        Value::Mapping(entries) => Node::Map(
            entries
                .into_iter()
                .map(|(k, v)| match node(k) {
                    Node::Str(k) => (k, node(v)),
                    other => panic!("a map key {other:?}"),
                })
                .collect(),
        ),
        Value::Tagged(t) => Node::Tag(t.tag.to_string(), Box::new(node(t.value))),
    }
}

// ------------------------------------------------------------------ conditions and rules

/// A stack's inputs: its parameters (defaults filled in), account and Region.
struct Env<'a> {
    template: &'a Node,
    params: BTreeMap<String, String>,
    account: String,
    region: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    List(Vec<String>),
}

impl<'a> Env<'a> {
    fn new(template: &'a Node, account: &str, region: &str, given: &[(&str, &str)]) -> Self {
        let mut params = BTreeMap::new();
        for (name, p) in template.at("Parameters").entries() {
            if let Some(d) = p.get("Default").and_then(Node::str) {
                params.insert(name.clone(), d.to_owned());
            }
        }
        for (name, value) in given {
            assert!(
                template.at("Parameters").get(name).is_some(),
                "no parameter {name}"
            );
            params.insert((*name).to_owned(), (*value).to_owned());
        }
        Env {
            template,
            params,
            account: account.to_owned(),
            region: region.to_owned(),
        }
    }

    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::AccountId" => self.account.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::Partition" => "aws".to_owned(),
            _ => self
                .params
                .get(name)
                .unwrap_or_else(|| panic!("parameter {name} has no value"))
                .clone(),
        }
    }

    fn string(&self, node: &Node) -> String {
        match self.value(node) {
            Val::Str(s) => s,
            Val::List(l) => panic!("a list where a string belongs: {l:?}"),
        }
    }

    fn value(&self, node: &Node) -> Val {
        match node {
            Node::Str(s) => Val::Str(s.clone()),
            Node::Seq(items) => Val::List(items.iter().map(|i| self.string(i)).collect()),
            Node::Tag(tag, arg) => match (tag.as_str(), arg.items()) {
                ("!Ref", _) => Val::Str(self.reference(arg.str().expect("!Ref name"))),
                ("!Split", [delimiter, text]) => Val::List(
                    self.string(text)
                        .split(self.string(delimiter).as_str())
                        .map(str::to_owned)
                        .collect(),
                ),
                ("!Select", [index, list]) => {
                    let index: usize = self.string(index).parse().expect("!Select index");
                    match self.value(list) {
                        Val::List(l) => Val::Str(l.get(index).cloned().unwrap_or_else(|| {
                            panic!("!Select {index} out of {l:?}: CloudFormation fails the stack")
                        })),
                        Val::Str(s) => panic!("!Select from a string {s}"),
                    }
                }
                _ => panic!("no evaluation for {node:?}"),
            },
            Node::Map(_) => panic!("no evaluation for {node:?}"),
        }
    }

    fn condition(&self, name: &str) -> bool {
        self.holds(self.template.at("Conditions").at(name))
    }

    /// A condition function (Conditions, RuleCondition, Assert).
    fn holds(&self, node: &Node) -> bool {
        let Some((tag, arg)) = node.tag() else {
            panic!("not a condition function: {node:?}");
        };
        match (tag, arg.items()) {
            ("!Equals", [a, b]) => self.value(a) == self.value(b),
            ("!Not", [c]) => !self.holds(c),
            ("!And", cs) => cs.iter().all(|c| self.holds(c)),
            ("!Or", cs) => cs.iter().any(|c| self.holds(c)),
            ("!Contains", [list, v]) => match self.value(list) {
                Val::List(l) => l.contains(&self.string(v)),
                Val::Str(s) => panic!("!Contains needs a list, not {s}"),
            },
            ("!Condition", _) => self.condition(arg.str().expect("condition name")),
            _ => panic!("unknown condition function {node:?}"),
        }
    }

    /// Whether the stack creates resource `logical`.
    fn creates(&self, logical: &str) -> bool {
        let resource = self.template.at("Resources").at(logical);
        resource
            .get("Condition")
            .and_then(Node::str)
            .is_none_or(|c| self.condition(c))
    }

    /// The rules whose assertions fail: CloudFormation refuses the stack for them.
    fn failing_rules(&self) -> Vec<String> {
        let mut failing = Vec::new();
        for (name, rule) in self.template.get("Rules").map_or(&[][..], Node::entries) {
            if rule.get("RuleCondition").is_some_and(|c| !self.holds(c)) {
                continue;
            }
            if rule
                .at("Assertions")
                .items()
                .iter()
                .any(|a| !self.holds(a.at("Assert")))
            {
                failing.push(name.clone());
            }
        }
        failing
    }
}

// ------------------------------------------------------------------ IAM

/// The actions the Allow statements of managed policy `logical` grant.
fn granted_actions(template: &Node, logical: &str) -> BTreeSet<String> {
    let policy = template.at("Resources").at(logical);
    assert_eq!(
        policy.at("Type").str(),
        Some("AWS::IAM::ManagedPolicy"),
        "{logical}"
    );
    let mut actions = BTreeSet::new();
    for statement in policy.at("Properties.PolicyDocument.Statement").items() {
        if statement.at("Effect").str() != Some("Allow") {
            continue;
        }
        match statement.at("Action") {
            Node::Str(a) => {
                actions.insert(a.clone());
            }
            Node::Seq(list) => actions.extend(list.iter().filter_map(Node::str).map(str::to_owned)),
            other => panic!("{logical}: action {other:?}"),
        }
    }
    actions
}

/// IAM action matching: case-insensitive, `*` and `?` wildcards.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn glob(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], a) || (!a.is_empty() && glob(p, &a[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &a[1..]),
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y) && glob(&p[1..], &a[1..]),
            _ => false,
        }
    }
    glob(pattern.as_bytes(), action.as_bytes())
}

// ------------------------------------------------------------------ the scripts' AWS calls

/// AWS Tools for PowerShell cmdlets → the API each calls. A cmdlet of an AWS module
/// that is not listed fails the test: list it with its action.
const CMDLETS: &[(&str, &str)] = &[
    ("Get-SSMParameter", "ssm:GetParameter"),
    ("Remove-SSMParameter", "ssm:DeleteParameter"),
    ("Get-SSMParameterValue", "ssm:GetParameters"),
    ("Get-SSMParametersByPath", "ssm:GetParametersByPath"),
    ("Get-SECSecretValue", "secretsmanager:GetSecretValue"),
    ("Get-STSCallerIdentity", "sts:GetCallerIdentity"),
    ("Write-CWLLogEvent", "logs:PutLogEvents"),
];

/// Noun prefixes of the AWS Tools modules (SSM, Secrets Manager, STS, …).
const AWS_NOUN_PREFIXES: &[&str] = &[
    "SSM", "SEC", "STS", "S3", "EC2", "CWL", "KMS", "IAM", "DDB", "SQS", "SNS", "EVB",
];

/// AWS CLI service names → IAM service prefixes.
const CLI_SERVICES: &[(&str, &str)] = &[
    ("ssm", "ssm"),
    ("secretsmanager", "secretsmanager"),
    ("sts", "sts"),
    ("ec2", "ec2"),
    ("logs", "logs"),
    ("kms", "kms"),
    ("s3api", "s3"),
    ("sqs", "sqs"),
    ("dynamodb", "dynamodb"),
];

/// The IAM actions of the AWS APIs a script calls (AWS CLI for bash, AWS Tools cmdlets
/// for PowerShell). Comments are skipped.
fn aws_calls(name: &str, script: &str) -> BTreeSet<String> {
    if name.ends_with(".sh") {
        cli_calls(name, script)
    } else if name.ends_with(".ps1") {
        cmdlet_calls(name, script)
    } else {
        panic!("{name}: neither bash nor PowerShell")
    }
}

fn cli_calls(name: &str, script: &str) -> BTreeSet<String> {
    let joined = script.replace("\\\n", " ");
    let mut calls = BTreeSet::new();
    for line in joined.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        for (i, token) in tokens.iter().enumerate() {
            if token
                .rsplit(['(', '`', '=', '"', '\''])
                .next()
                .unwrap_or_default()
                != "aws"
            {
                continue;
            }
            // `command -v aws`, `type aws`: a look for the CLI, not a call; nor is
            // `aws --version`.
            if i > 0 && ["-v", "type", "which", "hash"].contains(&tokens[i - 1]) {
                continue;
            }
            if tokens.get(i + 1) == Some(&"--version") {
                continue;
            }
            let mut words = tokens[i + 1..].iter().copied();
            let mut positional = Vec::new();
            while let Some(w) = words.next() {
                if let Some(option) = w.strip_prefix("--") {
                    if ["region", "profile", "output", "endpoint-url", "query"].contains(&option)
                        && positional.is_empty()
                    {
                        words.next();
                    }
                    if positional.is_empty() {
                        continue;
                    }
                }
                positional.push(w);
                if positional.len() == 2 {
                    break;
                }
            }
            let [service, operation] = positional[..] else {
                panic!("{name}: an aws call without service and operation: {line}");
            };
            let lowercase = |w: &str| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit())
            };
            assert!(
                lowercase(service) && lowercase(operation),
                "{name}: cannot read the aws call in: {line}"
            );
            let prefix = CLI_SERVICES
                .iter()
                .find(|(s, _)| *s == service)
                .unwrap_or_else(|| panic!("{name}: map the CLI service {service} to IAM"))
                .1;
            let action: String = operation
                .split('-')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            calls.insert(format!("{prefix}:{action}"));
        }
    }
    calls
}

fn cmdlet_calls(name: &str, script: &str) -> BTreeSet<String> {
    // Block comments, then line comments.
    let mut text = String::new();
    let mut rest = script;
    while let Some(open) = rest.find("<#") {
        text.push_str(&rest[..open]);
        rest = rest[open..]
            .find("#>")
            .map_or("", |close| &rest[open + close + 2..]);
    }
    text.push_str(rest);
    let mut calls = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let words = line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'));
        for word in words {
            let Some((verb, noun)) = word.split_once('-') else {
                continue;
            };
            let is_verb = verb.len() > 1
                && verb.starts_with(|c: char| c.is_ascii_uppercase())
                && verb[1..].bytes().all(|b| b.is_ascii_lowercase());
            let aws_noun = AWS_NOUN_PREFIXES.iter().any(|p| {
                noun.strip_prefix(p)
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_uppercase()))
            });
            if !(is_verb && aws_noun) {
                continue;
            }
            let action = CMDLETS
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(word))
                .unwrap_or_else(|| panic!("{name}: which API does {word} call? Add it to CMDLETS"))
                .1;
            calls.insert(action.to_owned());
        }
    }
    calls
}

/// Who runs a script, by its name: the template and the managed policies of each
/// reader's role. A joining instance has the staged-join policy and, when its account
/// joins with the shared password, the shared-password one; the AD tools host runs the
/// stage and leave scripts; the shared helpers run everywhere.
fn readers(name: &str) -> Vec<(&'static str, Vec<&'static str>)> {
    let join = (
        "member.yaml",
        vec!["InstanceJoinPolicy", "InstanceJoinSecretPolicy"],
    );
    let tools = ("central.yaml", vec!["ToolsHostJoinSecretPolicy"]);
    let file = name.rsplit('/').next().unwrap_or(name);
    match file.split('.').next() {
        Some("join") => vec![join],
        Some("leave" | "stage" | "tools") => vec![tools],
        Some("common") => vec![join, tools],
        _ => panic!("{name}: which role runs it? Add it to readers()"),
    }
}

fn template(name: &str) -> Node {
    parse(match name {
        "central.yaml" => CENTRAL,
        "member.yaml" => MEMBER,
        "region-forwarder.yaml" => FORWARDER,
        _ => panic!("no template {name}"),
    })
}

/// Every (script, reader policy, API) where the policy does not grant the API.
fn ungranted(scripts: &[(&str, &str)]) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, text) in scripts {
        for (file, policies) in readers(name) {
            let policy = policies.join(" + ");
            let granted: Vec<String> = policies
                .iter()
                .flat_map(|p| granted_actions(&template(file), p))
                .collect();
            for call in aws_calls(name, text) {
                if !granted.iter().any(|g| action_matches(g, &call)) {
                    missing.push(format!(
                        "{name} calls {call}; {file} {policy} grants {granted:?}"
                    ));
                }
            }
        }
    }
    missing
}

// ------------------------------------------------------------------ README

fn deploy_section() -> &'static str {
    let start = README.find("\n## Deploy\n").expect("## Deploy");
    let end = README[start..]
        .find("\n## Performance")
        .map_or(README.len(), |e| start + e);
    &README[start..end]
}

/// The shell commands of the code blocks of `text`, continuation lines joined.
fn shell_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let line = line.trim();
        if let Some(part) = line.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
        } else {
            current.push_str(line);
            commands.push(std::mem::take(&mut current));
        }
    }
    commands
}

// ------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;

    const SECURITY: &str = "111111111111";
    const MEMBER_ACCOUNT: &str = "222222222222";
    const DIRECTORY_REGION: &str = "eu-west-1";
    const OTHER_REGION: &str = "us-east-1";

    fn bus_arn() -> String {
        format!("arn:aws:events:{DIRECTORY_REGION}:{SECURITY}:event-bus/adjoin")
    }

    fn member_env<'a>(t: &'a Node, account: &str, region: &str) -> Env<'a> {
        let bus = bus_arn();
        Env::new(
            t,
            account,
            region,
            &[
                ("CentralEventBusArn", bus.as_str()),
                (
                    "CentralLambdaRoleArn",
                    format!("arn:aws:iam::{SECURITY}:role/adjoin-FunctionRole-1").as_str(),
                ),
                ("ExternalId", "0123456789abcdef0123456789abcdef"),
            ],
        )
    }

    fn forwarder_env<'a>(t: &'a Node, account: &str, region: &str) -> Env<'a> {
        let bus = bus_arn();
        Env::new(t, account, region, &[("CentralEventBusArn", bus.as_str())])
    }

    fn central_env<'a>(t: &'a Node, given: &[(&str, &str)]) -> Env<'a> {
        let mut all = vec![
            ("CodeBucket", "adjoin-code"),
            ("CodeKey", "adjoin/adjoin-lambda-arm64.zip"),
            ("OrganizationId", "o-a1b2c3d4e5"),
        ];
        all.extend_from_slice(given);
        Env::new(t, SECURITY, DIRECTORY_REGION, &all)
    }

    #[test]
    fn the_reader_parses_the_forms_the_templates_use() {
        let t = parse(
            "A: !Not [!Equals [!Ref X, \"\"]]\nB: !And\n  - !Condition A\n  - !Equals [!Select [3, !Split [\":\", !Ref Arn]], eu-west-1]\nC:\n- Sid: One # note\n  Action:\n    - ssm:GetParameter\n  Resource: !Sub arn:${AWS::Partition}:ssm:*:x\nD: {F: 15, \"G\": 'it''s'}\nE: !Sub |\n  {\n    \"a\": 1\n  }\n",
        );
        assert_eq!(
            t.at("A"),
            &Node::Tag(
                "!Not".into(),
                Box::new(Node::Seq(vec![Node::Tag(
                    "!Equals".into(),
                    Box::new(Node::Seq(vec![
                        Node::Tag("!Ref".into(), Box::new(Node::Str("X".into()))),
                        Node::Str(String::new())
                    ]))
                )]))
            )
        );
        assert_eq!(t.at("C").items()[0].at("Sid").str(), Some("One"));
        assert_eq!(
            t.at("C").items()[0].at("Action").items(),
            &[Node::Str("ssm:GetParameter".into())]
        );
        assert_eq!(t.at("D").at("G").str(), Some("it's"));
        assert_eq!(
            t.at("E").tag().and_then(|(_, s)| s.str()),
            Some("{\n  \"a\": 1\n}\n")
        );
        let with = |arn: &str| {
            let mut params = BTreeMap::new();
            params.insert("X".to_owned(), "x".to_owned());
            params.insert("Arn".to_owned(), arn.to_owned());
            params
        };
        let doc = parse(
            "Conditions:\n  A: !Equals [a, a]\n  B: !And\n    - !Condition A\n    - !Equals [!Select [3, !Split [\":\", !Ref Arn]], eu-west-1]\n",
        );
        let env = |arn: &str| Env {
            template: &doc,
            params: with(arn),
            account: SECURITY.into(),
            region: DIRECTORY_REGION.into(),
        };
        assert!(env(&bus_arn()).condition("B"));
        assert!(!env("arn:aws:events:us-east-1:1:event-bus/b").condition("B"));
        // The three templates parse through.
        for name in ["central.yaml", "member.yaml", "region-forwarder.yaml"] {
            assert!(template(name).at("Resources").entries().len() > 2, "{name}");
        }
    }

    // ---------------------------------------------------------------- 1. script APIs

    #[test]
    fn the_script_list_is_complete() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts");
        let mut found = BTreeSet::new();
        for dir in ["linux", "windows"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).expect("scripts dir") {
                let name = entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                if name.ends_with(".sh") || name.ends_with(".ps1") {
                    found.insert(format!("{dir}/{name}"));
                }
            }
        }
        let listed: BTreeSet<String> = SCRIPTS.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(found, listed, "list every script in SCRIPTS");
    }

    /// Join scripts run with the instance's role (member.yaml's instance policy), leave
    /// scripts on the AD tools host (central.yaml's tools-host policy), the shared
    /// helpers with both: every AWS API a script calls must be granted to its reader.
    #[test]
    fn every_aws_api_each_script_calls_is_granted_to_the_role_that_runs_it() {
        let mut seen = BTreeMap::new();
        for (name, text) in SCRIPTS {
            seen.insert(*name, aws_calls(name, text));
        }
        // The password reads are found (the check is not vacuous).
        assert_eq!(
            seen["linux/common.sh"],
            BTreeSet::from([
                "secretsmanager:GetSecretValue".to_owned(),
                "ssm:DeleteParameter".to_owned(),
                "ssm:GetParameter".to_owned()
            ])
        );
        assert_eq!(seen["windows/common.ps1"], seen["linux/common.sh"]);
        let missing = ungranted(SCRIPTS);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    /// The documents the stacks create are the bundled scripts of this version: the
    /// generated part of each template is what `adjoin documents --write-templates`
    /// writes now, so a script changed without the templates fails here.
    #[test]
    fn the_templates_documents_are_the_scripts_of_this_version() {
        for (name, text) in [
            ("member.yaml", MEMBER),
            ("region-forwarder.yaml", FORWARDER),
            ("central.yaml", CENTRAL),
        ] {
            let (tasks, condition) = adjoin_core::documents::of_template(name).expect("documents");
            let block = adjoin_core::documents::cloudformation(tasks, condition);
            let regenerated = adjoin_core::documents::with_block(text, &block)
                .unwrap_or_else(|| panic!("{name}: no generated part"));
            assert!(
                regenerated == text,
                "{name}: its documents differ from the scripts; run `cargo run -p adjoin-cli -- documents --write-templates infra`"
            );
            // And they parse as the documents the worker compares with.
            let template = template(name);
            for task in tasks {
                for platform in [
                    adjoin_core::instance::Platform::Linux,
                    adjoin_core::instance::Platform::Windows,
                ] {
                    let id = adjoin_core::documents::logical_id(*task, platform);
                    let resource = template.at("Resources").at(&id);
                    assert_eq!(
                        resource.at("Properties.Name").str(),
                        Some(adjoin_core::documents::name(*task, platform))
                    );
                    assert_eq!(resource.get("Condition").and_then(Node::str), condition);
                }
            }
        }
    }

    /// The reconciliation schedule invokes the function, which may read every ledger
    /// record and put the lost events on the queue, and finds the queue in its
    /// environment.
    #[test]
    fn the_reconciliation_schedule_invokes_the_function_which_may_scan_and_enqueue() {
        let central = template("central.yaml");
        let resources = central.at("Resources");
        let rule = resources.at("ReconcileRule");
        assert!(
            rule.at("Properties.ScheduleExpression")
                .is_ref("ReconcileSchedule")
        );
        let target = &rule.at("Properties.Targets").items()[0];
        assert_eq!(target.at("Arn").get_att("Arn"), Some("Function"));
        let permission = resources.at("ReconcilePermission.Properties");
        assert_eq!(
            permission.at("Principal").str(),
            Some("events.amazonaws.com")
        );
        assert_eq!(
            permission.at("SourceArn").get_att("Arn"),
            Some("ReconcileRule")
        );
        let role = format!("{:?}", resources.at("FunctionRole"));
        assert!(
            role.contains("dynamodb:Scan") && role.contains("ReconcileIntoQueue"),
            "{role}"
        );
        assert!(
            resources
                .at("Function.Properties.Environment.Variables.ADJOIN_QUEUE_URL")
                .is_ref("DomainJoinQueue")
        );
        assert_eq!(
            central.at("Parameters.ReconcileSchedule.Default").str(),
            Some("rate(1 day)")
        );
    }

    /// Tag changes reach the queue from every stack, for exactly the tags the worker
    /// reads, and the queue admits the central stack's tag rules.
    #[test]
    fn tag_change_rules_watch_the_tags_the_worker_reads() {
        let watched: Vec<&str> = adjoin_core::event::WATCHED_TAGS.to_vec();
        for (name, rules) in [
            ("member.yaml", &["ForwardTagChangesRule"][..]),
            ("region-forwarder.yaml", &["ForwardTagChangesRule"][..]),
            (
                "central.yaml",
                &["CentralBusTagRule", "DefaultBusTagRule"][..],
            ),
        ] {
            let template = template(name);
            for rule in rules {
                let pattern = template
                    .at("Resources")
                    .at(rule)
                    .at("Properties.EventPattern");
                assert_eq!(
                    pattern.at("source").items(),
                    [Node::Str(adjoin_core::event::TAG_SOURCE.into())]
                );
                assert_eq!(
                    pattern.at("detail-type").items(),
                    [Node::Str(adjoin_core::event::TAG_CHANGE_DETAIL_TYPE.into())]
                );
                let keys: Vec<&str> = pattern
                    .at("detail.changed-tag-keys")
                    .items()
                    .iter()
                    .filter_map(Node::str)
                    .collect();
                assert_eq!(keys, watched, "{name} {rule}");
            }
        }
        let policy = format!(
            "{:?}",
            template("central.yaml").at("Resources.DomainJoinQueuePolicy")
        );
        for rule in ["CentralBusTagRule.Arn", "DefaultBusTagRule.Arn"] {
            assert!(policy.contains(rule), "the queue does not admit {rule}");
        }
    }

    /// The templates carry the documents and exceed the 51,200 bytes CloudFormation
    /// takes inline: every command of the README that deploys one goes through S3.
    #[test]
    fn the_readme_deploys_the_large_templates_through_s3() {
        for (name, text) in [
            ("central.yaml", CENTRAL),
            ("member.yaml", MEMBER),
            ("region-forwarder.yaml", FORWARDER),
        ] {
            assert!(
                text.len() > 51_200,
                "{name} is small enough to go inline: simplify the README"
            );
        }
        let mut seen = 0;
        for command in README.split("aws cloudformation ").skip(1) {
            // The command, with its continuation lines.
            let mut text = String::new();
            for line in command.lines() {
                text.push_str(line);
                if !line.trim_end().ends_with('\\') {
                    break;
                }
            }
            if text.starts_with("deploy ") {
                seen += 1;
                assert!(
                    text.contains("--s3-bucket"),
                    "inline template: aws cloudformation {text}"
                );
            }
            if text.starts_with("create-stack-set ")
                || text.starts_with("update-stack-set ") && text.contains("--template")
            {
                seen += 1;
                assert!(
                    text.contains("--template-url"),
                    "inline template: aws cloudformation {text}"
                );
            }
            assert!(
                !text.contains("--template-body"),
                "aws cloudformation {text}"
            );
        }
        assert!(seen >= 5, "{seen} deploy commands found");
    }

    /// Root on member instances only through adjoin's own documents: the member role
    /// may send the original's AWS-RunShellScript / AWS-RunPowerShellScript only when
    /// the stack allows them, never to an instance tagged autoadjoin=false, and the
    /// central role only the tools host's documents.
    #[test]
    fn roles_send_only_adjoins_documents_and_never_to_opted_out_instances() {
        let member = template("member.yaml");
        let statements = member
            .at("Resources.MemberRole.Properties.Policies")
            .items()
            .first()
            .expect("policy")
            .at("PolicyDocument.Statement")
            .items()
            .to_vec();
        let text = |n: &Node| format!("{n:?}");
        let send = statements
            .iter()
            .find(|s| s.get("Sid").and_then(Node::str) == Some("SendJoinCommand"))
            .expect("SendJoinCommand");
        assert!(text(send).contains("document/adjoin-Join-*"));
        assert!(!text(send).contains("AWS-Run"), "{send:?}");
        let original = statements
            .iter()
            .find(|s| text(s).contains("SendOriginalDocuments"))
            .expect("the original's documents");
        let (tag, args) = original.tag().expect("!If");
        assert_eq!(tag, "!If");
        assert_eq!(
            args.items().first().and_then(Node::str),
            Some("AllowAwsRunScript")
        );
        assert_eq!(
            member
                .at("Parameters.AllowAwsRunScriptDocuments.Default")
                .str(),
            Some("false")
        );
        let deny = statements
            .iter()
            .find(|s| s.get("Sid").and_then(Node::str) == Some("NeverToOptedOutInstances"))
            .expect("the opt-out deny");
        assert_eq!(deny.at("Effect").str(), Some("Deny"));
        assert_eq!(
            deny.at("Condition.StringEqualsIgnoreCase")
                .get("ssm:resourceTag/autoadjoin")
                .and_then(Node::str),
            Some("false")
        );
        let central = template("central.yaml");
        let function = text(central.at("Resources.FunctionRole"));
        assert!(
            !function.contains("AWS-Run"),
            "the central role sends the original's documents"
        );
        assert!(
            function.contains("document/adjoin-Stage-*")
                && function.contains("document/adjoin-Leave-*")
        );
    }

    /// Staged joins: an instance's role may read and delete only the one-time password
    /// parameter tagged with its own ARN (and is denied everyone else's, whatever
    /// AmazonSSMManagedInstanceCore allows), and nothing that holds the join password
    /// unless the account asks for shared-password joins. The emulator cannot show this:
    /// it evaluates SSM requests against the resource "*" and ignores conditions.
    #[test]
    fn instances_read_only_their_own_one_time_password_and_never_the_join_password() {
        let member = template("member.yaml");
        let statements = |logical: &str| {
            member
                .at("Resources")
                .at(logical)
                .at("Properties.PolicyDocument.Statement")
                .items()
                .to_vec()
        };
        let condition_value = |statement: &Node, operator: &str| {
            let key = format!("aws:ResourceTag/{}", adjoin_core::staging::INSTANCE_TAG);
            statement
                .at("Condition")
                .at(operator)
                .get(&key)
                .and_then(Node::str)
                .map(str::to_owned)
        };
        let staged = statements("InstanceJoinPolicy");
        let mut allows = 0;
        for statement in &staged {
            let text = format!("{statement:?}");
            assert!(
                !text.contains("JoinPasswordParameterPath") && !text.contains("secretsmanager"),
                "the staged-join policy reaches the join password: {text}"
            );
            if statement.at("Effect").str() == Some("Allow") {
                allows += 1;
                assert!(text.contains("parameter/adjoin/otp/*"), "{text}");
                assert_eq!(
                    condition_value(statement, "StringEquals").as_deref(),
                    Some("${ec2:SourceInstanceARN}"),
                    "every grant is for the caller's own parameter: {text}"
                );
            }
        }
        assert_eq!(allows, 1);
        let denies_others = staged.iter().any(|s| {
            s.at("Effect").str() == Some("Deny")
                && condition_value(s, "StringNotEquals").as_deref()
                    == Some("${ec2:SourceInstanceARN}")
                && [
                    "ssm:GetParameter",
                    "ssm:GetParameters",
                    "ssm:DeleteParameter",
                ]
                .iter()
                .all(|a| s.at("Action").items().iter().any(|n| n.str() == Some(a)))
        });
        assert!(
            denies_others,
            "other instances' parameters are denied explicitly"
        );
        let denies_paths = staged.iter().any(|s| {
            s.at("Effect").str() == Some("Deny")
                && s.at("Action")
                    .items()
                    .iter()
                    .any(|n| n.str() == Some("ssm:GetParametersByPath"))
                && s.get("Condition").is_none()
        });
        assert!(denies_paths, "path reads would get round the tag");
        // The shared join password: only with SharedPasswordJoins=true.
        let shared = member.at("Resources").at("InstanceJoinSecretPolicy");
        assert_eq!(
            shared.at("Condition").str(),
            Some("SharedPasswordJoinsCondition")
        );
        assert_eq!(
            member.at("Parameters.SharedPasswordJoins.Default").str(),
            Some("false")
        );
        assert!(
            member
                .at("Outputs.InstancePolicyArn.Value")
                .is_ref("InstanceJoinPolicy")
        );
    }

    /// The check catches what the Windows helper did before: Get-SSMParameterValue
    /// calls ssm:GetParameters, which neither policy grants.
    #[test]
    fn a_script_calling_an_api_no_policy_grants_is_caught() {
        let before = "$plain = (Get-SSMParameterValue -Name $parameter -WithDecryption $true -Region $region).Parameters[0].Value\n";
        let missing = ungranted(&[("windows/common.ps1", before)]);
        assert_eq!(missing.len(), 2, "{missing:#?}");
        assert!(
            missing.iter().all(|m| m.contains("ssm:GetParameters;")),
            "{missing:#?}"
        );
        let cli = "P=$(aws --region \"$r\" ssm get-parameters --names \"$p\" \\\n  --with-decryption)\n# aws kms decrypt (a comment)\ncommand -v aws >/dev/null\n";
        assert_eq!(
            aws_calls("x.sh", cli),
            BTreeSet::from(["ssm:GetParameters".to_owned()])
        );
        assert_eq!(ungranted(&[("linux/leave.sh", cli)]).len(), 1);
        let comment =
            "# Get-SSMParameterValue would call ssm:GetParameters\n<# Get-SSMParameterValue #>\n";
        assert!(aws_calls("x.ps1", comment).is_empty());
    }

    // ---------------------------------------------------------------- 2 and 6. log groups

    /// Which of the stacks the README deploys in (account, Region) create the command log
    /// group: exactly one everywhere commands run, so none collides and none is missing.
    #[test]
    fn exactly_one_stack_creates_the_command_log_group_in_every_account_and_region() {
        let (central, member, forwarder) = (
            template("central.yaml"),
            template("member.yaml"),
            template("region-forwarder.yaml"),
        );
        for t in [&central, &member, &forwarder] {
            let group = t.at("Resources.CommandLogGroup.Properties.LogGroupName");
            assert!(group.is_ref("CommandLogGroupName"), "{group:?}");
            assert_eq!(
                t.at("Parameters.CommandLogGroupName.Default").str(),
                Some("/adjoin/commands")
            );
        }
        // The security account: central, member (its own instances) and the forwarder
        // in its other Regions; a member account: member and the forwarder.
        let cases = [
            (
                SECURITY,
                DIRECTORY_REGION,
                vec!["central.yaml", "member.yaml"],
            ),
            (SECURITY, OTHER_REGION, vec!["region-forwarder.yaml"]),
            (MEMBER_ACCOUNT, DIRECTORY_REGION, vec!["member.yaml"]),
            (MEMBER_ACCOUNT, OTHER_REGION, vec!["region-forwarder.yaml"]),
        ];
        for (account, region, stacks) in cases {
            let mut creators = Vec::new();
            for stack in stacks {
                let creates = match stack {
                    "central.yaml" => central_env(&central, &[]).creates("CommandLogGroup"),
                    "member.yaml" => {
                        member_env(&member, account, region).creates("CommandLogGroup")
                    }
                    _ => forwarder_env(&forwarder, account, region).creates("CommandLogGroup"),
                };
                if creates {
                    creators.push(stack);
                }
            }
            assert_eq!(creators.len(), 1, "{account} {region}: {creators:?}");
        }
        // A StackSet that also reaches the directory Region with the forwarder creates
        // no second group there either.
        assert!(
            !forwarder_env(&forwarder, MEMBER_ACCOUNT, DIRECTORY_REGION).creates("CommandLogGroup")
        );
        // Without a name: no group anywhere.
        let none = Env::new(
            &forwarder,
            MEMBER_ACCOUNT,
            OTHER_REGION,
            &[
                ("CentralEventBusArn", bus_arn().as_str()),
                ("CommandLogGroupName", ""),
            ],
        );
        assert!(!none.creates("CommandLogGroup"));
    }

    /// In the central account and Region, member.yaml forwards nothing (central.yaml's
    /// default-bus rule sees those events); elsewhere it forwards by default.
    #[test]
    fn member_stack_forwards_except_in_the_central_account_and_region() {
        let member = template("member.yaml");
        assert!(!member_env(&member, SECURITY, DIRECTORY_REGION).creates("ForwardRule"));
        assert!(member_env(&member, MEMBER_ACCOUNT, DIRECTORY_REGION).creates("ForwardRule"));
        assert!(member_env(&member, SECURITY, OTHER_REGION).creates("ForwardRule"));
        // Everything else of the member stack is created in the security account too.
        assert!(member_env(&member, SECURITY, DIRECTORY_REGION).creates("MemberRole"));
        assert!(
            member_env(&member, SECURITY, DIRECTORY_REGION).creates("InstanceCommandOutputPolicy")
        );
    }

    /// The instances' output policy lets them write the group in whatever Region they
    /// run (member.yaml is deployed in one Region only, its policy is global).
    #[test]
    fn instances_may_write_command_output_in_every_region() {
        let member = template("member.yaml");
        let statements =
            member.at("Resources.InstanceCommandOutputPolicy.Properties.PolicyDocument.Statement");
        let write = statements
            .items()
            .iter()
            .find(|s| s.get("Sid").and_then(Node::str) == Some("WriteCommandOutput"))
            .expect("WriteCommandOutput");
        let resource = write
            .at("Resource")
            .tag()
            .and_then(|(t, r)| (t == "!Sub").then_some(r));
        let resource = resource.and_then(Node::str).expect("!Sub resource");
        assert!(
            resource.starts_with(
                "arn:${AWS::Partition}:logs:*:${AWS::AccountId}:log-group:${CommandLogGroupName}:"
            ),
            "{resource}"
        );
    }

    // ---------------------------------------------------------------- 5. batch size

    #[test]
    fn a_batch_size_above_ten_without_a_batching_window_is_refused_by_a_rule() {
        let central = template("central.yaml");
        let failing = |given: &[(&str, &str)]| central_env(&central, given).failing_rules();
        assert!(
            failing(&[]).is_empty(),
            "the defaults pass: {:?}",
            failing(&[])
        );
        for ok in [
            vec![("BatchSize", "1")],
            vec![("BatchSize", "10")],
            vec![
                ("BatchSize", "100"),
                ("MaximumBatchingWindowInSeconds", "1"),
            ],
            vec![
                ("BatchSize", "10000"),
                ("MaximumBatchingWindowInSeconds", "300"),
            ],
        ] {
            assert!(failing(&ok).is_empty(), "{ok:?}: {:?}", failing(&ok));
        }
        for refused in [
            vec![("BatchSize", "11")],
            vec![
                ("BatchSize", "100"),
                ("MaximumBatchingWindowInSeconds", "0"),
            ],
            vec![("BatchSize", "10000")],
        ] {
            assert_eq!(
                failing(&refused),
                vec!["BatchSizeNeedsBatchingWindow".to_owned()],
                "{refused:?}"
            );
        }
        // The other rules still work through the same evaluation.
        let none = Env::new(
            &central,
            SECURITY,
            DIRECTORY_REGION,
            &[("CodeBucket", "b"), ("CodeKey", "k")],
        );
        assert_eq!(none.failing_rules(), vec!["SendersNamed".to_owned()]);
    }

    // ---------------------------------------------------------------- 8. forwarding DLQs

    /// Every EventBridge rule target that is an event bus (member.yaml's and
    /// region-forwarder.yaml's forwarding to the central bus) has a retry policy and a
    /// dead-letter queue; the queue's policy lets EventBridge send for that rule; an
    /// alarm watches the queue's visible messages; all under the rule's condition.
    #[test]
    fn every_forwarding_target_has_a_retry_policy_a_dead_letter_queue_and_an_alarm() {
        let mut targets_checked = 0;
        for name in ["central.yaml", "member.yaml", "region-forwarder.yaml"] {
            let t = template(name);
            let resources = t.at("Resources").entries();
            let of_type = |ty: &str| {
                resources
                    .iter()
                    .filter(move |(_, r)| r.at("Type").str() == Some(ty))
                    .collect::<Vec<_>>()
            };
            let condition = |r: &Node| r.get("Condition").and_then(Node::str).map(str::to_owned);
            for (rule_id, rule) in of_type("AWS::Events::Rule") {
                for target in rule.at("Properties.Targets").items() {
                    let arn = target.at("Arn");
                    let to_bus = arn.is_ref("CentralEventBusArn")
                        || arn.str().is_some_and(|a| a.contains(":event-bus/"));
                    if !to_bus {
                        continue;
                    }
                    targets_checked += 1;
                    let retry = target
                        .get("RetryPolicy")
                        .unwrap_or_else(|| panic!("{name} {rule_id}: no RetryPolicy"));
                    let attempts: u32 = retry
                        .at("MaximumRetryAttempts")
                        .str()
                        .and_then(|s| s.parse().ok())
                        .expect("attempts");
                    let age: u32 = retry
                        .at("MaximumEventAgeInSeconds")
                        .str()
                        .and_then(|s| s.parse().ok())
                        .expect("age");
                    assert!(
                        attempts <= 185 && (60..=86400).contains(&age),
                        "{name} {rule_id}"
                    );
                    let dlq = target
                        .get("DeadLetterConfig")
                        .map(|d| d.at("Arn"))
                        .and_then(|a| a.get_att("Arn"))
                        .unwrap_or_else(|| {
                            panic!("{name} {rule_id}: no DeadLetterConfig !GetAtt <queue>.Arn")
                        });
                    let queue = t.at("Resources").at(dlq);
                    assert_eq!(
                        queue.at("Type").str(),
                        Some("AWS::SQS::Queue"),
                        "{name} {dlq}"
                    );
                    assert_eq!(condition(queue), condition(rule), "{name} {dlq}");
                    // The queue policy: EventBridge may send, for this rule only.
                    let policies: Vec<_> = of_type("AWS::SQS::QueuePolicy")
                        .into_iter()
                        .filter(|(_, p)| {
                            p.at("Properties.Queues")
                                .items()
                                .iter()
                                .any(|q| q.is_ref(dlq))
                        })
                        .collect();
                    assert_eq!(policies.len(), 1, "{name}: one policy on {dlq}");
                    let (policy_id, policy) = policies[0];
                    assert_eq!(condition(policy), condition(rule), "{name} {policy_id}");
                    let allows = policy
                        .at("Properties.PolicyDocument.Statement")
                        .items()
                        .iter()
                        .any(|s| {
                            s.at("Effect").str() == Some("Allow")
                                && s.at("Principal.Service").str() == Some("events.amazonaws.com")
                                && s.at("Action").str() == Some("sqs:SendMessage")
                                && s.at("Resource").get_att("Arn") == Some(dlq)
                                && {
                                    // One rule's ARN, or a list of them.
                                    let source = s.at("Condition.ArnEquals.aws:SourceArn");
                                    source.get_att("Arn") == Some(rule_id)
                                        || source
                                            .items()
                                            .iter()
                                            .any(|a| a.get_att("Arn") == Some(rule_id))
                                }
                        });
                    assert!(
                        allows,
                        "{name} {policy_id}: EventBridge may not send for {rule_id}"
                    );
                    // The alarm on its visible messages.
                    let alarmed = of_type("AWS::CloudWatch::Alarm").into_iter().any(|(_, a)| {
                        let p = a.at("Properties");
                        p.at("Namespace").str() == Some("AWS/SQS")
                            && p.at("MetricName").str()
                                == Some("ApproximateNumberOfMessagesVisible")
                            && p.at("Threshold").str() == Some("0")
                            && p.at("ComparisonOperator").str() == Some("GreaterThanThreshold")
                            && p.at("Dimensions").items().iter().any(|d| {
                                d.at("Name").str() == Some("QueueName")
                                    && d.at("Value").get_att("QueueName") == Some(dlq)
                            })
                            && condition(a) == condition(rule)
                    });
                    assert!(alarmed, "{name}: no alarm on {dlq}'s visible messages");
                }
            }
        }
        assert_eq!(
            targets_checked, 4,
            "member.yaml's and region-forwarder.yaml's targets (state changes, tag changes)"
        );
    }

    // ---------------------------------------------------------------- README (3, 4, 7)

    /// Every `Parameter` (value …) the Deploy section states matches the template's
    /// default, as do the queue limits of the configuration table.
    #[test]
    fn the_readme_states_the_template_defaults() {
        let templates = [
            template("central.yaml"),
            template("member.yaml"),
            template("region-forwarder.yaml"),
        ];
        let default_of = |param: &str| -> Option<Vec<String>> {
            let found: Vec<String> = templates
                .iter()
                .filter_map(|t| t.at("Parameters").get(param))
                .filter_map(|p| p.get("Default").and_then(Node::str).map(str::to_owned))
                .collect();
            (!found.is_empty()).then_some(found)
        };
        // Line breaks do not hide a `Parameter` (value).
        let deploy = deploy_section()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut checked = Vec::new();
        for (at, _) in deploy.match_indices("` (") {
            let Some(open) = deploy[..at].rfind('`') else {
                continue;
            };
            let param = &deploy[open + 1..at];
            let Some(defaults) = default_of(param) else {
                continue;
            };
            let stated = deploy[at + 3..].split([')', ';', ',']).next().unwrap_or("");
            // A value: a number, a `literal` or "empty"; other words are prose.
            let value = stated.starts_with(['`', '-'])
                || stated.starts_with(|c: char| c.is_ascii_digit())
                || stated.starts_with("empty");
            if !value {
                continue;
            }
            let stated = stated.replace('`', "");
            let stated = match stated.split_whitespace().next().unwrap_or("") {
                "empty" => "",
                word => word,
            };
            assert!(
                defaults.iter().all(|d| d == stated),
                "README says `{param}` ({stated}); the templates' default: {defaults:?}"
            );
            checked.push(param.to_owned());
        }
        for param in [
            "Timeout",
            "DelaySeconds",
            "MaxReceiveCount",
            "MaxAttempts",
            "TableBillingMode",
        ] {
            assert!(
                checked.iter().any(|c| c == param),
                "the README states no default of {param}: {checked:?}"
            );
        }
        let central = &templates[0];
        let receive = central
            .at("Parameters.MaxReceiveCount.Default")
            .str()
            .expect("default");
        let attempts = central
            .at("Parameters.MaxAttempts.Default")
            .str()
            .expect("default");
        assert!(
            README.contains(&format!("`maxReceiveCount`, {receive} in the template")),
            "configuration table: maxReceiveCount {receive}"
        );
        assert!(README.contains(&format!("| `ADJOIN_MAX_ATTEMPTS` | deliveries before a deferred or failing message is rejected (default {attempts};")));
        let receive: u32 = receive.parse().expect("number");
        let attempts: u32 = attempts.parse().expect("number");
        assert!(
            receive > attempts,
            "MaxReceiveCount must stay above MaxAttempts"
        );
    }

    /// StackSet commands name `--call-as`: from a delegated administrator they are
    /// refused without `--call-as DELEGATED_ADMIN`.
    #[test]
    fn the_readme_stack_set_commands_say_who_calls() {
        let deploy = deploy_section();
        let stack_set: Vec<String> = shell_commands(deploy)
            .into_iter()
            .filter(|c| {
                c.contains("aws cloudformation")
                    && (c.contains("stack-set") || c.contains("stack-instances"))
            })
            .collect();
        assert!(stack_set.len() >= 3, "{stack_set:#?}");
        for command in &stack_set {
            assert!(command.contains("--call-as"), "no --call-as: {command}");
        }
        assert!(deploy.contains("DELEGATED_ADMIN"));
        // Prose that names a StackSet command shows the option too.
        assert!(deploy.contains("--call-as \"$CALL_AS\""));
    }

    /// Each member account's external id is generated before it is used, goes into that
    /// account's stack and into its config item.
    #[test]
    fn the_readme_generates_each_external_id_and_puts_it_in_the_config_item() {
        let deploy = deploy_section();
        let generate = "EXTERNAL_ID=$(openssl rand -hex 16)";
        let first_set = deploy.find(generate).expect("generated");
        let first_use = deploy.find("\"$EXTERNAL_ID\"").expect("used");
        assert!(first_set < first_use, "used before it is set");
        let step5 = &deploy[deploy.find("### 5. Account config item").expect("step 5")..];
        let step5 = &step5[..step5.find("\n### 6").expect("step 6")];
        assert!(
            step5.contains("while read -r ACCOUNT EXTERNAL_ID; do"),
            "{step5}"
        );
        assert!(
            step5.contains("\"externalId\":        {\"S\": \"'\"$EXTERNAL_ID\"'\"}"),
            "{step5}"
        );
        assert!(step5.contains("done < adjoin-external-ids.txt"), "{step5}");
        // Every block that writes the list generates the id in the same block.
        for command in shell_commands(deploy) {
            if command.contains(">> adjoin-external-ids.txt") {
                assert!(command.contains("\"$ACCOUNT $EXTERNAL_ID\""), "{command}");
            }
        }
        let writes = deploy.matches(">> adjoin-external-ids.txt").count();
        assert!(writes >= 2, "by hand and in the StackSet loop");
    }

    /// Step 6 names every tools-host output of central.yaml and the packages the leave
    /// scripts need (the tools leave.sh checks for).
    #[test]
    fn the_readme_tools_host_step_names_its_policies_and_packages() {
        let deploy = deploy_section();
        let step6 = &deploy[deploy.find("### 6. The AD tools host").expect("step 6")..];
        let step6 = &step6[..step6.find("\n### 7").expect("step 7")];
        let central = template("central.yaml");
        let outputs: Vec<&str> = central
            .at("Outputs")
            .entries()
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("ToolsHost"))
            .collect();
        assert!(outputs.len() >= 2, "{outputs:?}");
        for output in outputs {
            assert!(
                step6.contains(&format!("`{output}`")),
                "step 6 omits {output}"
            );
        }
        let helpers = SCRIPTS
            .iter()
            .find(|(n, _)| *n == "linux/tools.sh")
            .expect("tools.sh")
            .1;
        let tools = helpers
            .lines()
            .find_map(|l| l.trim().strip_prefix("for tool in "))
            .and_then(|l| l.strip_suffix("; do"))
            .expect("tools.sh checks its tools");
        for tool in tools.split_whitespace() {
            assert!(step6.contains(tool), "step 6 omits {tool}");
        }
        for package in [
            "adcli",
            "krb5-user",
            "krb5-workstation",
            "ldap-utils",
            "openldap-clients",
            "RSAT-AD-PowerShell",
        ] {
            assert!(step6.contains(package), "step 6 omits {package}");
        }
    }

    /// The member role may tag instances with the worker's ready tag, and with nothing
    /// else.
    #[test]
    fn the_member_role_may_set_the_ready_tag_and_no_other() {
        let member = template("member.yaml");
        let statements = member
            .at("Resources.MemberRole.Properties.Policies")
            .items()
            .iter()
            .flat_map(|p| p.at("PolicyDocument.Statement").items())
            .filter(|s| s.get("Action").and_then(Node::str) == Some("ec2:CreateTags"))
            .collect::<Vec<_>>();
        assert_eq!(statements.len(), 1, "one CreateTags grant");
        let keys = statements[0]
            .at("Condition")
            .at("ForAllValues:StringEquals")
            .at("aws:TagKeys")
            .items()
            .iter()
            .filter_map(Node::str)
            .collect::<Vec<_>>();
        assert_eq!(keys, [adjoin_core::instance::READY_TAG]);
    }
}
