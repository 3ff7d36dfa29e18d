//! `Sessions` on STS: the service's own credentials, or a member account's assumed role.
//!
//! Assumed-role sessions are kept per role and Region until five minutes before their
//! credentials expire, so a warm container assumes each role once per hour, not per event.
//! Each role and Region has its own lock: one slow AssumeRole holds up only the events of
//! its own account. [`Caching::Off`] re-creates everything per call (the benchmark's
//! baseline).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::sync::{Mutex, OnceCell};

use adjoin_core::config::RoleTarget;
use adjoin_core::ids::{AccountId, Region};
use adjoin_core::ports::{AccountPorts, Sessions};

use crate::clients::Clients;
use crate::commands::SsmCommands;
use crate::error::map_sdk_error;
use crate::instances::Ec2Instances;
use crate::parameters::SsmParameters;

/// How long an assumed session lasts (the STS minimum is 15 minutes).
const SESSION_DURATION: Duration = Duration::from_secs(3600);
/// Sessions are renewed this long before their credentials expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Whether sessions and clients are kept between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    On,
    Off,
}

/// One role and Region's session, behind its own lock.
type Slot = Arc<Mutex<Option<(AccountPorts, SystemTime)>>>;

pub struct AwsSessions {
    base: SdkConfig,
    clients: Clients,
    caching: Caching,
    sts: aws_sdk_sts::Client,
    home_account: OnceCell<AccountId>,
    assumed: Mutex<HashMap<(String, Region), Slot>>,
    /// The service's own clients per Region, built once (connections are reused).
    home: Mutex<HashMap<Region, AccountPorts>>,
}

impl AwsSessions {
    pub fn new(base: SdkConfig) -> Self {
        Self::with(base, Clients::default(), Caching::On)
    }

    pub fn with(base: SdkConfig, clients: Clients, caching: Caching) -> Self {
        AwsSessions {
            sts: clients.sts(&base),
            base,
            clients,
            caching,
            home_account: OnceCell::new(),
            assumed: Mutex::new(HashMap::new()),
            home: Mutex::new(HashMap::new()),
        }
    }

    fn home_region(&self) -> Result<Region, adjoin_core::Error> {
        let region = self
            .base
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        Region::parse(&region).map_err(|message| adjoin_core::Error::Invalid {
            operation: "configuration",
            message,
        })
    }

    async fn caller_account(&self) -> Result<AccountId, adjoin_core::Error> {
        caller_account(&self.sts).await
    }

    async fn home_account(&self) -> Result<AccountId, adjoin_core::Error> {
        if self.caching == Caching::Off {
            return self.caller_account().await;
        }
        self.home_account
            .get_or_try_init(|| self.caller_account())
            .await
            .cloned()
    }

    fn ports(&self, config: &SdkConfig, account: AccountId, region: Region) -> AccountPorts {
        AccountPorts {
            account,
            region,
            instances: Arc::new(Ec2Instances::new(self.clients.ec2(config))),
            commands: Arc::new(SsmCommands::new(self.clients.ssm(config))),
            parameters: Arc::new(SsmParameters::new(self.clients.ssm(config))),
        }
    }

    /// AssumeRole, and the ports on its credentials; with the credentials' expiry.
    async fn assume_now(
        &self,
        role: &RoleTarget,
        region: &Region,
    ) -> Result<(AccountPorts, SystemTime), adjoin_core::Error> {
        let (config, expires) =
            assumed_config(&self.sts, &self.base, region, role, "adjoin").await?;
        Ok((
            self.ports(&config, role.account.clone(), region.clone()),
            expires,
        ))
    }

    fn in_region(&self, region: &Region) -> SdkConfig {
        in_region(&self.base, region)
    }
}

/// The account of the credentials `sts` signs with (GetCallerIdentity).
pub(crate) async fn caller_account(
    sts: &aws_sdk_sts::Client,
) -> Result<AccountId, adjoin_core::Error> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| map_sdk_error("sts:GetCallerIdentity", e))?;
    AccountId::parse(out.account().unwrap_or_default()).map_err(|message| {
        adjoin_core::Error::Invalid {
            operation: "sts:GetCallerIdentity",
            message,
        }
    })
}

/// `base` in `region`.
pub(crate) fn in_region(base: &SdkConfig, region: &Region) -> SdkConfig {
    base.to_builder()
        .region(aws_config::Region::new(region.as_str().to_owned()))
        .build()
}

/// AssumeRole with the role's external id, as session `<session_prefix>-<account>`:
/// `base` in `region` with the session's credentials, and when they expire.
pub(crate) async fn assumed_config(
    sts: &aws_sdk_sts::Client,
    base: &SdkConfig,
    region: &Region,
    role: &RoleTarget,
    session_prefix: &str,
) -> Result<(SdkConfig, SystemTime), adjoin_core::Error> {
    let out = sts
        .assume_role()
        .role_arn(&role.arn)
        .role_session_name(format!("{session_prefix}-{}", role.account))
        .set_external_id(role.external_id.clone())
        .duration_seconds(SESSION_DURATION.as_secs() as i32)
        .send()
        .await
        .map_err(|e| map_sdk_error("sts:AssumeRole", e))?;
    let creds = out
        .credentials()
        .ok_or_else(|| adjoin_core::Error::Invalid {
            operation: "sts:AssumeRole",
            message: "the response has no credentials".into(),
        })?;
    let expires = SystemTime::try_from(*creds.expiration()).unwrap_or_else(|_| SystemTime::now());
    let credentials = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        Some(expires),
        "adjoin-assume-role",
    );
    let config = in_region(base, region)
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    Ok((config, expires))
}

#[async_trait]
impl Sessions for AwsSessions {
    async fn home(&self) -> Result<AccountPorts, adjoin_core::Error> {
        let region = self.home_region()?;
        self.home_in(&region).await
    }

    async fn home_in(&self, region: &Region) -> Result<AccountPorts, adjoin_core::Error> {
        let account = self.home_account().await?;
        if self.caching == Caching::Off {
            return Ok(self.ports(&self.in_region(region), account, region.clone()));
        }
        let mut home = self.home.lock().await;
        let ports = home
            .entry(region.clone())
            .or_insert_with(|| self.ports(&self.in_region(region), account, region.clone()));
        Ok(ports.clone())
    }

    async fn assume(
        &self,
        role: &RoleTarget,
        region: &Region,
    ) -> Result<AccountPorts, adjoin_core::Error> {
        if self.caching == Caching::Off {
            return Ok(self.assume_now(role, region).await?.0);
        }
        let slot: Slot = self
            .assumed
            .lock()
            .await
            .entry((role.arn.clone(), region.clone()))
            .or_default()
            .clone();
        let mut session = slot.lock().await;
        if let Some((ports, expires)) = session.as_ref()
            && SystemTime::now() + RENEW_BEFORE < *expires
        {
            return Ok(ports.clone());
        }
        let (ports, expires) = self.assume_now(role, region).await?;
        *session = Some((ports.clone(), expires));
        Ok(ports)
    }
}
