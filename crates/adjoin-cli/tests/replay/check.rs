//! `adjoin check` against the AWS API emulator, seeded with the sample accounts.

use std::process::Output;
use std::sync::Arc;

use adjoin_core::admin::checks::{self, CheckPorts, Verdict};
use adjoin_core::admin::fake::online;
use adjoin_core::admin::{AdminPorts, AdminSessions};
use adjoin_core::config::RoleTarget;
use adjoin_core::fake::FakeAws;
use adjoin_core::ids::Region;
use adjoin_core::testing::{account, instance_id, region_named, tools_tag};
use adjoin_testkit::samples::{CONFIG_TABLE, Seeded};
use adjoin_testkit::{HOME_ACCOUNT, Moto};

use super::{MEMBER, REGION, adjoin, seeded};

fn check(moto: &Moto, seeded: &Seeded, account: &str, instance: &str) -> Output {
    let args = ["check", "--account", account, "--instance", instance];
    adjoin(moto, &seeded.env, args)
}

fn line<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| {
            l[l.char_indices().nth(2).map_or(0, |(i, _)| i)..].starts_with(&format!("{name}:"))
        })
        .unwrap_or_else(|| panic!("no {name} line in {report}"))
}

/// The real adapters, except SSM agents: an in-memory fake of the `AgentStatus` port
/// stands in for them, because moto does not implement DescribeInstanceInformation.
struct FakeAgents {
    real: adjoin_aws::admin::AwsAdminSessions,
    agents: FakeAws,
}

#[async_trait::async_trait]
impl AdminSessions for FakeAgents {
    async fn home_in(&self, region: &Region) -> Result<AdminPorts, adjoin_core::Error> {
        let real = self.real.home_in(region).await?;
        let fake = self.agents.home_in(region).await?;
        Ok(AdminPorts {
            agents: fake.agents,
            ..real
        })
    }
    async fn assume(
        &self,
        role: &RoleTarget,
        region: &Region,
    ) -> Result<AdminPorts, adjoin_core::Error> {
        let real = self.real.assume(role, region).await?;
        let fake = self.agents.assume(role, region).await?;
        Ok(AdminPorts {
            agents: fake.agents,
            ..real
        })
    }
}

/// The binary runs every check against the emulator. moto has no
/// DescribeInstanceInformation, so against it the two agent checks fail with the
/// emulator's error and every other check passes; the same preflight with an in-memory
/// fake of the agent port (and the real adapters for everything else) passes whole.
#[tokio::test(flavor = "multi_thread")]
async fn the_preflight_of_the_sample_instances() {
    let (moto, bed, seeded) = seeded("check").await;
    let linux = &seeded.ids["i-0a1b2c3d4e5f60001"];

    let out = check(&moto, &seeded, MEMBER, linux);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{report}");
    for passing in [
        "config item",
        "role assumable",
        "instance running",
        "platform",
        "opt-out tag",
        "adGroupName",
        "tools host",
    ] {
        assert!(
            line(&report, passing).starts_with('✓'),
            "{passing}: {report}"
        );
    }
    assert!(line(&report, "adGroupName").ends_with("linux-admins"));
    assert!(line(&report, "tools host").contains(&seeded.tools_host));
    for agent in ["SSM agent", "tools host agent"] {
        let l = line(&report, agent);
        assert!(
            l.starts_with('✗') && l.contains("does not implement this operation"),
            "{report}"
        );
    }

    // The opted-out instance, and one that does not exist.
    let opted_out = check(&moto, &seeded, MEMBER, &seeded.ids["i-0a1b2c3d4e5f60004"]);
    let report = String::from_utf8_lossy(&opted_out.stdout).into_owned();
    assert!(line(&report, "opt-out tag").starts_with('✗'), "{report}");
    assert!(report.contains("delete-tags"), "{report}");
    let gone = check(&moto, &seeded, MEMBER, "i-0fffffffffffffff0");
    let report = String::from_utf8_lossy(&gone.stdout).into_owned();
    assert!(
        line(&report, "instance running").starts_with('✗'),
        "{report}"
    );
    assert!(line(&report, "SSM agent").starts_with('–'), "{report}");
    let unknown = check(&moto, &seeded, "999999999999", linux);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stdout).starts_with("✗ config item"));

    // With agents registered (in the fake), the same instance passes every check.
    let sdk = bed.as_account(HOME_ACCOUNT, REGION).await.expect("sdk");
    let (home, region) = (account(HOME_ACCOUNT), region_named(REGION));
    let agents = FakeAws::new(home.clone(), region.clone());
    for (at, id) in [(account(MEMBER), linux), (home, &seeded.tools_host)] {
        agents.put_agent(&at, &region, &instance_id(id), online("Linux"));
    }
    let config =
        adjoin_aws::DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&sdk), CONFIG_TABLE);
    let sessions = adjoin_aws::AwsSessions::new(sdk.clone());
    let admin = Arc::new(FakeAgents {
        real: adjoin_aws::admin::AwsAdminSessions::new(sdk),
        agents,
    });
    let ports = CheckPorts {
        config: &config,
        sessions: &sessions,
        admin: admin.as_ref(),
    };
    let report = checks::preflight(&ports, MEMBER, linux, &region, &tools_tag()).await;
    assert!(report.passed(), "{report:#?}");
    assert_eq!(
        report.get("SSM agent").map(|c| c.verdict),
        Some(Verdict::Pass)
    );
}
