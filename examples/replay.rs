//! Replay a script of Pavilion inputs and print every effect the machine produces.
//!
//! This shows the Pavilion queue machine from the outside, with no platform and no clock: a
//! TOML file configures it, a JSON-lines script feeds it (one input per line: `arrive`,
//! `heartbeat`, `submit`, `return`, `abandon`, `tick`, `hire_posted`, `hire_failed`, `start`,
//! `stop`, `expire`, `migrate`, `set_targets`), and every effect comes out on stdout as one JSON
//! object per line, in order, followed by a final `snapshot` line. A line the machine refuses
//! prints an `error` line naming it, and the run goes on. The format is documented in
//! `crowdcore::replay` and the workspace README.
//!
//! Run it on the shipped sample (from the workspace root):
//!
//! ```text
//! cargo run -p crowdcore-examples --example replay -- \
//!     --config examples/data/pavilion.toml < examples/data/events.jsonl
//! ```
//!
//! Its output is committed as `examples/data/expected.jsonl` and checked by
//! `examples/tests/replay.rs`.
//!
//! The config keys are the fields of `crowdcore::pavilion::PavilionConfig` (`min_active`,
//! `max_active`, `min_waiting`, `max_waiting`, `heartbeat_timeout_ms`, `returned_slots_reopen`,
//! `budget_cents`, the pay rates, …); a key left out takes its default, an unknown key is an
//! error. Effect ids are `<session>/<seq>`; `--session` defaults to `replay` so that the same
//! script always prints the same output.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use crowdcore::SessionId;
use crowdcore::pavilion::PavilionConfig;
use crowdcore::retainer::RetainerConfig;
use serde::de::DeserializeOwned;

/// Replay a JSON-lines script of Pavilion inputs and print the effects as JSON lines.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The machine's configuration (TOML; keys are the fields of `PavilionConfig`, or of
    /// `RetainerConfig` with `--machine retainer`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Which machine the script drives: the Pavilion queues, or the retainer's reservations.
    #[arg(long, value_enum, default_value = "pavilion")]
    machine: Machine,
    /// The session id; effect ids are `<session>/<seq>`.
    #[arg(long, default_value = "replay")]
    session: String,
    /// Read the script from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Machine {
    /// `crowdcore::pavilion`: inputs `arrive`, `heartbeat`, `submit`, … (see the README).
    Pavilion,
    /// `crowdcore::retainer`: inputs `register_template`, `make_reservation`, `invoke`,
    /// `cancel`, `finish`, `unfinish`, `finish_all`, `arrive`, `ping`, `poll`, `submit`, …;
    /// routing comes out as `route` lines.
    Retainer,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match replay(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn replay(args: &Args) -> Result<(), String> {
    let input: Box<dyn BufRead> = match &args.input {
        Some(path) => Box::new(BufReader::new(
            File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        )),
        None => Box::new(io::stdin().lock()),
    };

    // Lines are read as the machine needs them, so a script can be piped in as it is written.
    // A read error ends the script; it is reported after the run.
    let mut read_error = None;
    let lines = input
        .lines()
        .map_while(|line| line.map_err(|e| read_error = Some(e)).ok());

    let mut out = BufWriter::new(io::stdout().lock());
    let mut write_error = None;
    let session = SessionId::new(args.session.as_str());
    let write = |line: String| {
        if write_error.is_none() {
            write_error = writeln!(out, "{line}").err();
        }
    };
    let ran = match args.machine {
        Machine::Pavilion => {
            let config: PavilionConfig = load_config(&args.config)?;
            config
                .validate()
                .map_err(|e| format!("invalid config {}: {e}", args.config.display()))?;
            crowdcore::replay::run(session, config, lines, write).map(drop)
        }
        Machine::Retainer => {
            let config: RetainerConfig = load_config(&args.config)?;
            crowdcore::replay::run_retainer(session, config, lines, write).map(drop)
        }
    };
    ran.map_err(|e| format!("invalid config {}: {e}", args.config.display()))?;

    if let Some(e) = read_error {
        return Err(format!("cannot read the script: {e}"));
    }
    match write_error {
        Some(e) => Err(format!("cannot write the output: {e}")),
        None => out
            .flush()
            .map_err(|e| format!("cannot write the output: {e}")),
    }
}

/// Reads the config: unknown keys are errors (the machine checks the values).
fn load_config<C: DeserializeOwned>(path: &Path) -> Result<C, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        // toml's messages end with a newline after the excerpt they quote.
        let e = e.to_string();
        format!("invalid config {}: {}", path.display(), e.trim_end())
    })
}
