//! `adjoin documents`: adjoin's SSM Command documents, as the stacks create them.

use std::path::PathBuf;
use std::process::ExitCode;

use adjoin_core::documents::{self, ALL};

use crate::EXIT_FAILED;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Write one `<name>.json` per document into DIR (to create them without the stacks:
    /// aws ssm create-document --document-type Command --document-format JSON
    /// --name NAME --content file://DIR/NAME.json).
    #[arg(long, value_name = "DIR")]
    json: Option<PathBuf>,
    /// Rewrite the generated part of DIR/member.yaml, region-forwarder.yaml and
    /// central.yaml from the bundled scripts.
    #[arg(long, value_name = "DIR", conflicts_with = "json")]
    write_templates: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let result = if let Some(dir) = args.json {
        write_json(&dir)
    } else if let Some(dir) = args.write_templates {
        write_templates(&dir)
    } else {
        for (task, platform) in ALL {
            println!(
                "{}\t{} ({}): {} values",
                documents::name(task, platform),
                format!("{task:?}").to_lowercase(),
                platform.as_str(),
                documents::parameters(task).len()
            );
        }
        Ok(())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adjoin documents: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn write_json(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (task, platform) in ALL {
        let path = dir.join(format!("{}.json", documents::name(task, platform)));
        let text = serde_json::to_string_pretty(&documents::content(task, platform))
            .map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn write_templates(dir: &std::path::Path) -> Result<(), String> {
    for template in ["member.yaml", "region-forwarder.yaml", "central.yaml"] {
        let Some((tasks, condition)) = documents::of_template(template) else {
            continue;
        };
        let path = dir.join(template);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let updated = documents::with_block(&text, &documents::cloudformation(tasks, condition))
            .ok_or_else(|| {
                format!(
                    "{}: no generated part (its markers are missing)",
                    path.display()
                )
            })?;
        if updated != text {
            std::fs::write(&path, updated).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{}: updated", path.display());
        } else {
            println!("{}: unchanged", path.display());
        }
    }
    Ok(())
}
