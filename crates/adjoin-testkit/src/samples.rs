//! The sample events of `tests/events/`, made real in the emulator.
//!
//! `seed.json` beside the events says which accounts, config items, instances and tools
//! host they need. The emulator assigns its own instance ids, so the events are copied
//! with the sample ids replaced by the seeded ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Bed, Error, HOME_ACCOUNT};

/// The tables, DLQ and join password parameter the samples are seeded with.
pub const CONFIG_TABLE: &str = "adjoin-config";
pub const LEDGER_TABLE: &str = "adjoin-ledger";
pub const DLQ_NAME: &str = "adjoin-dlq";
pub const PASSWORD_PARAMETER: &str = "/adjoin/join-password";

/// What [`seed`] made.
pub struct Seeded {
    /// Copies of the event files, with the emulator's instance ids.
    pub files: Vec<PathBuf>,
    /// Sample instance id → emulator instance id.
    pub ids: BTreeMap<String, String>,
    /// The tools host's emulator id.
    pub tools_host: String,
    /// Environment for `adjoin` / the Lambda: `ADJOIN_*` variables.
    pub env: Vec<(&'static str, String)>,
    /// Expected `action outcome` per message, by file stem.
    pub expected: BTreeMap<String, Vec<String>>,
}

fn bad(message: String) -> Error {
    Error::Aws {
        operation: "seed",
        message,
    }
}

/// Seeds the emulator for the events in `events_dir` and writes their copies to `out_dir`.
/// `password` is stored as the join password SecureString.
pub async fn seed(
    bed: &Bed,
    events_dir: &Path,
    out_dir: &Path,
    password: &str,
) -> Result<Seeded, Error> {
    let manifest: Value = std::fs::read_to_string(events_dir.join("seed.json"))
        .map_err(|e| bad(format!("seed.json: {e}")))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| bad(format!("seed.json: {e}"))))?;

    bed.create_table(CONFIG_TABLE, "accountId").await?;
    bed.create_table(LEDGER_TABLE, "instanceId").await?;
    let dlq = bed.create_queue(DLQ_NAME).await?;
    for item in manifest["accounts"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, a)| &a["config"])
    {
        bed.put_config(CONFIG_TABLE, item).await?;
    }

    let mut ids = BTreeMap::new();
    let mut secured = std::collections::BTreeSet::new();
    for (sample_id, spec) in manifest["instances"].as_object().into_iter().flatten() {
        let account = spec["account"].as_str().unwrap_or(HOME_ACCOUNT);
        let region = spec["region"].as_str().unwrap_or(&bed.region);
        if secured.insert((account.to_owned(), region.to_owned())) {
            bed.put_secure_parameter(account, region, PASSWORD_PARAMETER, password)
                .await?;
            bed.create_documents(account, region).await?;
        }
        let tags = string_pairs(&spec["tags"]);
        let tag_refs: Vec<(&str, &str)> =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let id = bed
            .run_instance(account, region, spec["platform"] == "windows", &tag_refs)
            .await?;
        if spec["joined"] == true {
            bed.record_joined(LEDGER_TABLE, account, region, &id)
                .await?;
        }
        if spec["state"] == "terminated" {
            bed.terminate_instance(account, region, &id).await?;
        }
        ids.insert(sample_id.clone(), id);
    }

    let tools = &manifest["tools_host"];
    let tools_tags = string_pairs(&tools["tags"]);
    let tag_refs: Vec<(&str, &str)> = tools_tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let region = bed.region.clone();
    let tools_host = bed
        .run_instance(
            HOME_ACCOUNT,
            &region,
            tools["platform"] == "windows",
            &tag_refs,
        )
        .await?;
    bed.put_secure_parameter(HOME_ACCOUNT, &region, PASSWORD_PARAMETER, password)
        .await?;
    bed.create_documents(HOME_ACCOUNT, &region).await?;
    let (tag_key, tag_value) = tools_tags
        .iter()
        .find(|(k, _)| k != "Name")
        .cloned()
        .ok_or_else(|| bad("tools_host needs a tag other than Name".into()))?;

    std::fs::create_dir_all(out_dir).map_err(|e| bad(format!("{}: {e}", out_dir.display())))?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(events_dir)
        .map_err(|e| bad(format!("{}: {e}", events_dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "seed.json")
        })
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for path in entries {
        let mut text =
            std::fs::read_to_string(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        for (sample, real) in &ids {
            text = text.replace(sample.as_str(), real);
        }
        let target = out_dir.join(path.file_name().unwrap_or_default());
        std::fs::write(&target, text).map_err(|e| bad(format!("{}: {e}", target.display())))?;
        files.push(target);
    }

    let expected = manifest["expected"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            )
        })
        .collect();
    Ok(Seeded {
        files,
        ids,
        tools_host,
        env: vec![
            ("ADJOIN_CONFIG_TABLE", CONFIG_TABLE.to_owned()),
            ("ADJOIN_LEDGER_TABLE", LEDGER_TABLE.to_owned()),
            ("ADJOIN_DLQ_URL", dlq),
            ("ADJOIN_TOOLS_HOST_TAG_KEY", tag_key),
            ("ADJOIN_TOOLS_HOST_TAG_VALUE", tag_value),
        ],
        expected,
    })
}

fn string_pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}
