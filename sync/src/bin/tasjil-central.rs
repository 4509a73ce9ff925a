//! `tasjil-central`: the issuance centre's command line. This build has `init`, which makes the
//! centre's keys; receiving syncs and bundles comes with the sync work.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tasjil_sync::CentreKeys;

#[derive(Parser)]
#[command(name = "tasjil-central", version, about = "Tasjil issuance centre")]
struct Cli {
    /// Where the centre keeps its keys and data (default: $XDG_DATA_HOME/tasjil-central).
    #[arg(long, global = true, env = "TASJIL_CENTRAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make the centre's keys: an age identity (opens payloads) and an Ed25519 key (signs receipts).
    /// Writes DATA_DIR/centre.key (secret, mode 0600) and DATA_DIR/centre.pub (give it to stations).
    Init,
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("tasjil-central"));
    }
    let home =
        std::env::var_os("HOME").context("neither --data-dir, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/tasjil-central"))
}

fn run(cli: Cli) -> anyhow::Result<serde_json::Value> {
    let dir = match cli.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    match cli.command {
        Command::Init => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let keys = CentreKeys::generate();
            let secret = dir.join("centre.key");
            keys.save(&secret)?;
            let public = dir.join("centre.pub");
            std::fs::write(&public, keys.public().to_json())
                .with_context(|| format!("cannot write {}", public.display()))?;
            Ok(serde_json::json!({
                "centre_key": secret,
                "centre_pub": public,
                "age_recipient": keys.public().age_recipients[0],
            }))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(out) => {
            if json {
                println!("{out}");
            } else {
                println!(
                    "centre initialised\n  secret keys: {}\n  public keys: {} (give this file to stations: tasjil init --central-key)",
                    out["centre_key"].as_str().unwrap_or_default(),
                    out["centre_pub"].as_str().unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": format!("{e:#}")})
                );
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
