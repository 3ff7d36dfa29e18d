//! Seeding the emulator and reading back what the service did.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use crate::{Error, Moto, aws};

/// The account moto gives to the default credentials: the service's own ("security") account.
pub const HOME_ACCOUNT: &str = "123456789012";

/// A command as the emulator recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCommand {
    pub command_id: String,
    pub document: String,
    pub instance_ids: Vec<String>,
    pub commands: Vec<String>,
    /// The document's parameters (adjoin's documents: each value base64).
    pub parameters: std::collections::BTreeMap<String, Vec<String>>,
    pub comment: String,
    /// `OutputS3BucketName` (the emulator does not keep `CloudWatchOutputConfig`).
    pub output_s3_bucket: Option<String>,
}

impl RecordedCommand {
    /// The values the command hands its script, decoded: from adjoin's document's
    /// parameters, or from the parameter block of the original's `commands`.
    pub fn values(&self) -> std::collections::BTreeMap<String, String> {
        use base64::Engine as _;
        if adjoin_core::documents::by_name(&self.document).is_none() {
            return adjoin_core::render::decode_params(&self.commands)
                .into_iter()
                .collect();
        }
        self.parameters
            .iter()
            .filter(|(name, _)| name.as_str() != "executionTimeout")
            .filter_map(|(name, values)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(values.first()?)
                    .ok()
                    .filter(|b| !b.is_empty())?;
                Some((name.clone(), String::from_utf8_lossy(&bytes).into_owned()))
            })
            .collect()
    }

    /// The values each instance's script works with, by instance id: the shared values
    /// and, for a command sent to several instances, each one's own row of its
    /// `INSTANCES` table (else the command's `INSTANCE_ID` is the one instance).
    pub fn values_by_instance(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
        use base64::Engine as _;
        let decode = |v: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let mut shared = self.values();
        let Some(table) = shared.remove("INSTANCES") else {
            return shared
                .get("INSTANCE_ID")
                .cloned()
                .map(|id| (id, shared.clone()))
                .into_iter()
                .collect();
        };
        table
            .lines()
            .filter_map(|row| {
                let mut words = row.split(' ');
                let id = words.next()?.to_owned();
                let mut values = shared.clone();
                for pair in words {
                    let (name, value) = pair.split_once('=')?;
                    values.insert(name.to_owned(), decode(value)?);
                }
                Some((id, values))
            })
            .collect()
    }
}

/// A seeded emulator, seen from the service's home account and Region.
pub struct Bed {
    endpoint: String,
    pub region: String,
    home: SdkConfig,
}

impl Bed {
    pub async fn new(moto: &Moto, region: &str) -> Bed {
        let home = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto.endpoint())
            .region(aws_config::Region::new(region.to_owned()))
            .credentials_provider(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "adjoin-testkit",
            ))
            .load()
            .await;
        Bed {
            endpoint: moto.endpoint().to_owned(),
            region: region.to_owned(),
            home,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK config acting in `account` (the home account, or a member through AssumeRole).
    pub async fn as_account(&self, account: &str, region: &str) -> Result<SdkConfig, Error> {
        let in_region = self
            .home
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()));
        if account == HOME_ACCOUNT {
            return Ok(in_region.build());
        }
        let out = aws_sdk_sts::Client::new(&self.home)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/adjoin-testkit"))
            .role_session_name("adjoin-testkit")
            .send()
            .await
            .map_err(aws("sts:AssumeRole"))?;
        let c = out.credentials().ok_or_else(|| Error::Aws {
            operation: "sts:AssumeRole",
            message: "no credentials".into(),
        })?;
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "adjoin-testkit",
        );
        Ok(in_region
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds),
            )
            .build())
    }

    /// An EC2 client acting in `account`/`region`.
    async fn ec2(&self, account: &str, region: &str) -> Result<aws_sdk_ec2::Client, Error> {
        Ok(aws_sdk_ec2::Client::new(
            &self.as_account(account, region).await?,
        ))
    }

    /// An SSM client acting in `account`/`region`.
    async fn ssm(&self, account: &str, region: &str) -> Result<aws_sdk_ssm::Client, Error> {
        Ok(aws_sdk_ssm::Client::new(
            &self.as_account(account, region).await?,
        ))
    }

    /// An SQS client of the home account.
    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.home)
    }

    /// Creates a table with string partition key `key` (no error if it exists).
    pub async fn create_table(&self, table: &str, key: &str) -> Result<(), Error> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.home);
        let result = ddb
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(aws("build"))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(aws("build"))?,
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if format!("{e:?}").contains("ResourceInUseException") => Ok(()),
            Err(e) => Err(aws("dynamodb:CreateTable")(e)),
        }
    }

    /// Puts a config item given as JSON (strings, lists of strings).
    /// The join ledger in `table`, as the service reads and writes it.
    pub fn ledger(&self, table: &str) -> adjoin_aws::DynamoLedger {
        adjoin_aws::DynamoLedger::new(aws_sdk_dynamodb::Client::new(&self.home), table)
    }

    /// Writes a ledger record saying the instance was joined when it started.
    pub async fn record_joined(
        &self,
        table: &str,
        account: &str,
        region: &str,
        id: &str,
    ) -> Result<(), Error> {
        use adjoin_core::ledger::{JoinRecord, JoinStatus, format_time};
        use adjoin_core::ports::Ledger as _;
        let seed_error = |message: String| Error::Aws {
            operation: "record_joined",
            message,
        };
        let instance = adjoin_core::ids::InstanceId::parse(id).map_err(seed_error)?;
        let now = format_time(std::time::SystemTime::now());
        let record = JoinRecord {
            instance_id: id.to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
            status: JoinStatus::Joined,
            computer_name: adjoin_core::computer_name::computer_name(&instance, None),
            message_id: "seeded".into(),
            event_id: "seeded".into(),
            command_id: None,
            command_target: None,
            ou_path: None,
            attempts: 1,
            exit_code: Some(0),
            output: None,
            created_at: now.clone(),
            updated_at: now,
            expires_at: None,
            version: 1,
        };
        self.ledger(table)
            .put_if(&record, None)
            .await
            .map_err(|e| seed_error(e.to_string()))
            .map(drop)
    }

    pub async fn put_config(&self, table: &str, item: &serde_json::Value) -> Result<(), Error> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut put = aws_sdk_dynamodb::Client::new(&self.home)
            .put_item()
            .table_name(table);
        for (k, v) in item.as_object().into_iter().flatten() {
            let value = match v {
                serde_json::Value::Array(items) => AttributeValue::L(
                    items
                        .iter()
                        .map(|i| AttributeValue::S(i.as_str().unwrap_or_default().to_owned()))
                        .collect(),
                ),
                serde_json::Value::String(s) => AttributeValue::S(s.clone()),
                other => AttributeValue::S(other.to_string()),
            };
            put = put.item(k, value);
        }
        put.send().await.map_err(aws("dynamodb:PutItem"))?;
        Ok(())
    }

    /// Starts an instance in `account`/`region` with tags; returns its id.
    pub async fn run_instance(
        &self,
        account: &str,
        region: &str,
        windows: bool,
        tags: &[(&str, &str)],
    ) -> Result<String, Error> {
        self.run_instances(account, region, windows, 1, tags)
            .await?
            .pop()
            .ok_or_else(|| Error::Aws {
                operation: "ec2:RunInstances",
                message: "no instance".into(),
            })
    }

    /// Starts `count` instances with the same tags in one call; returns their ids.
    pub async fn run_instances(
        &self,
        account: &str,
        region: &str,
        windows: bool,
        count: usize,
        tags: &[(&str, &str)],
    ) -> Result<Vec<String>, Error> {
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        let ec2 = self.ec2(account, region).await?;
        let images = ec2
            .describe_images()
            .send()
            .await
            .map_err(aws("ec2:DescribeImages"))?;
        let image = images
            .images()
            .iter()
            .find(|i| i.platform().is_some() == windows)
            .and_then(|i| i.image_id())
            .ok_or_else(|| Error::Aws {
                operation: "ec2:DescribeImages",
                message: "no suitable AMI".into(),
            })?
            .to_owned();
        let mut run = ec2
            .run_instances()
            .image_id(image)
            .min_count(count)
            .max_count(count);
        if !tags.is_empty() {
            let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
            for (k, v) in tags {
                spec = spec.tags(Tag::builder().key(*k).value(*v).build());
            }
            run = run.tag_specifications(spec.build());
        }
        let out = run.send().await.map_err(aws("ec2:RunInstances"))?;
        Ok(out
            .instances()
            .iter()
            .filter_map(|i| i.instance_id())
            .map(str::to_owned)
            .collect())
    }

    pub async fn stop_instance(&self, account: &str, region: &str, id: &str) -> Result<(), Error> {
        let ec2 = self.ec2(account, region).await?;
        ec2.stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(aws("ec2:StopInstances"))?;
        Ok(())
    }

    pub async fn terminate_instance(
        &self,
        account: &str,
        region: &str,
        id: &str,
    ) -> Result<(), Error> {
        let ec2 = self.ec2(account, region).await?;
        ec2.terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(aws("ec2:TerminateInstances"))?;
        Ok(())
    }

    /// Creates a queue in the home account; returns its URL.
    pub async fn create_queue(&self, name: &str) -> Result<String, Error> {
        let out = self
            .sqs()
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(aws("sqs:CreateQueue"))?;
        Ok(out.queue_url().unwrap_or_default().to_owned())
    }

    /// Sends `body` to a queue.
    pub async fn send_message(&self, url: &str, body: &str) -> Result<(), Error> {
        self.sqs()
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(aws("sqs:SendMessage"))?;
        Ok(())
    }

    /// Receives up to ten messages from a queue, as the Lambda's event source mapping
    /// hands them to the worker (receipt handle, receive count, queue ARN).
    pub async fn receive(&self, url: &str) -> Result<Vec<adjoin_core::worker::Message>, Error> {
        use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
        let sqs = self.sqs();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(aws("sqs:GetQueueAttributes"))?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned());
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(aws("sqs:ReceiveMessage"))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| adjoin_core::worker::Message {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().map(str::to_owned),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                source_queue_arn: arn.clone(),
            })
            .collect())
    }

    /// Deletes a received message (what the event source mapping does with a success).
    pub async fn delete_message(&self, url: &str, receipt_handle: &str) -> Result<(), Error> {
        self.sqs()
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(aws("sqs:DeleteMessage"))?;
        Ok(())
    }

    /// Makes a received message visible again now (as if its visibility timeout passed).
    pub async fn make_visible(&self, url: &str, receipt_handle: &str) -> Result<(), Error> {
        self.sqs()
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(aws("sqs:ChangeMessageVisibility"))?;
        Ok(())
    }

    /// Messages on a queue, with their `adjoin-reason` attribute.
    pub async fn drain_queue(&self, url: &str) -> Result<Vec<(String, String)>, Error> {
        let sqs = self.sqs();
        let mut found = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(aws("sqs:ReceiveMessage"))?;
            if out.messages().is_empty() {
                return Ok(found);
            }
            for m in out.messages() {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get("adjoin-reason"))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default()
                    .to_owned();
                found.push((m.body().unwrap_or_default().to_owned(), reason));
                if let Some(handle) = m.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(aws("sqs:DeleteMessage"))?;
                }
            }
        }
    }

    /// Stores a SecureString parameter in `account`/`region`.
    pub async fn put_secure_parameter(
        &self,
        account: &str,
        region: &str,
        name: &str,
        value: &str,
    ) -> Result<(), Error> {
        let ssm = self.ssm(account, region).await?;
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .map_err(aws("ssm:PutParameter"))?;
        Ok(())
    }

    /// Creates adjoin's SSM documents in `account`/`region`, as the stacks do (one
    /// already there is left as it is).
    pub async fn create_documents(&self, account: &str, region: &str) -> Result<(), Error> {
        let ssm = self.ssm(account, region).await?;
        for (task, platform) in adjoin_core::documents::ALL {
            let created = ssm
                .create_document()
                .name(adjoin_core::documents::name(task, platform))
                .content(adjoin_core::documents::content(task, platform).to_string())
                .document_type(aws_sdk_ssm::types::DocumentType::Command)
                .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_document_already_exists()) => {}
                Err(e) => return Err(aws("ssm:CreateDocument")(e)),
            }
        }
        Ok(())
    }

    /// A parameter of `account`/`region` as Parameter Store holds it, `None` when there
    /// is none.
    pub async fn parameter(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<StoredParameter>, Error> {
        let ssm = self.ssm(account, region).await?;
        let got = ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await;
        let parameter = match got {
            Ok(out) => out.parameter,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(aws("ssm:GetParameter")(e)),
        };
        let Some(parameter) = parameter else {
            return Ok(None);
        };
        let tags = ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .map_err(aws("ssm:ListTagsForResource"))?
            .tag_list
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect();
        let described = ssm
            .describe_parameters()
            .parameter_filters(
                aws_sdk_ssm::types::ParameterStringFilter::builder()
                    .key("Name")
                    .values(name)
                    .build()
                    .map_err(aws("ssm:DescribeParameters"))?,
            )
            .send()
            .await
            .map_err(aws("ssm:DescribeParameters"))?;
        let meta = described.parameters().first();
        Ok(Some(StoredParameter {
            value: parameter.value.unwrap_or_default(),
            secure: parameter.r#type == Some(aws_sdk_ssm::types::ParameterType::SecureString),
            tier: meta
                .and_then(|m| m.tier())
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            policies: meta
                .map(|m| {
                    m.policies()
                        .iter()
                        .filter_map(|p| p.policy_text().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            tags,
        }))
    }

    /// The commands SSM recorded in `account`/`region`, oldest first.
    pub async fn commands(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Vec<RecordedCommand>, Error> {
        let ssm = self.ssm(account, region).await?;
        let mut commands = Vec::new();
        let mut pages = ssm.list_commands().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws("ssm:ListCommands"))?;
            commands.extend(page.commands().iter().map(|c| {
                RecordedCommand {
                    command_id: c.command_id().unwrap_or_default().to_owned(),
                    document: c.document_name().unwrap_or_default().to_owned(),
                    instance_ids: c.instance_ids().to_vec(),
                    commands: c
                        .parameters()
                        .and_then(|p| p.get("commands"))
                        .cloned()
                        .unwrap_or_default(),
                    parameters: c
                        .parameters()
                        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                    comment: c.comment().unwrap_or_default().to_owned(),
                    output_s3_bucket: c.output_s3_bucket_name().map(str::to_owned),
                }
            }));
        }
        commands.reverse();
        Ok(commands)
    }
}

/// A parameter as Parameter Store holds it ([`Bed::parameter`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParameter {
    pub value: String,
    /// A SecureString.
    pub secure: bool,
    /// `Standard` or `Advanced`.
    pub tier: String,
    /// The parameter policies' JSON texts.
    pub policies: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// An EC2 state-change event as EventBridge delivers it.
pub fn event(account: &str, region: &str, instance: &str, state: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": format!("{:08x}-0000-4000-8000-{:012x}", instance.len() * 7919 + state.len(), instance.bytes().map(u64::from).sum::<u64>()),
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": account,
        "time": adjoin_core::ledger::format_time(std::time::SystemTime::now()),
        "region": region,
        "resources": [format!("arn:aws:ec2:{region}:{account}:instance/{instance}")],
        "detail": {"instance-id": instance, "state": state}
    })
}
