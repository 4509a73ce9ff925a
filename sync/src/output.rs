//! What both command lines (`tasjil`, `tasjil-central`) share about output: human text by
//! default, one JSON object with `--json` (errors included), exit 0 on success and 1 when a
//! problem was found. Bad usage (exit 2) is clap's.

use std::process::ExitCode;

/// What a command produced: the JSON object, the human text, and whether it found a problem.
#[derive(Debug)]
pub struct Output {
    pub json: serde_json::Value,
    pub human: String,
    pub ok: bool,
}

impl Output {
    pub fn ok(json: serde_json::Value, human: String) -> Output {
        Output {
            json,
            human,
            ok: true,
        }
    }
}

/// Print a command's result (or error) and give its exit code.
pub fn finish(result: anyhow::Result<Output>, json: bool) -> ExitCode {
    match result {
        Ok(out) => {
            if json {
                say(&out.json.to_string());
            } else if !out.human.is_empty() {
                say(&out.human);
            }
            if out.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            if json {
                say(&serde_json::json!({"ok": false, "error": format!("{e:#}")}).to_string());
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Print a line to standard output. A closed pipe (`tasjil list | head`) is not an error worth a
/// panic: whatever was committed stays committed.
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
