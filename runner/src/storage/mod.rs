//! ci-storage: store and load work-directory slots on a host over ssh + rsync, compatible
//! with the original Python tool (CLI, storage layout, meta files, host-side perl scripts).

pub mod cli;
pub mod hints;
pub mod meta;
pub mod rsync;
pub mod shell;
pub mod slots;
pub mod transport;

use std::path::Path;

use anyhow::Context;

use cli::{Action, Config};
use meta::SlotMeta;
use rsync::Direction;
use slots::SlotInfo;
use transport::Transport;

/// Host-side perl scripts (the shared `slot_infos` sub is appended to each).
pub mod scripts {
    /// Lists committed slots: `<id> <age_sec> <escaped meta>`, newest first.
    pub const LIST_SLOTS: &str = concat!(
        include_str!("scripts/list_slots.pl"),
        include_str!("scripts/slot_infos.pl")
    );
    /// Moves `<id>.tmp.<ts>` into place with its meta.
    pub const COMMIT_SLOT: &str = concat!(
        include_str!("scripts/commit_slot.pl"),
        include_str!("scripts/slot_infos.pl")
    );
    /// Removes old slots and `.bak.` dirs, detached and under a lock.
    pub const MAINTENANCE: &str = concat!(
        include_str!("scripts/maintenance.pl"),
        include_str!("scripts/slot_infos.pl")
    );
}

/// A failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage or input; nothing was done (exit 2).
    #[error("{0}")]
    Usage(String),
    /// None of the requested slots exists (exit 1).
    #[error("{0}")]
    NotFound(String),
    /// rsync, ssh, a host script or local I/O failed (exit 1).
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl Error {
    /// Process exit code: 2 for usage, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::NotFound(_) | Self::Failed(_) => 1,
        }
    }
}

/// Prints one line of progress to stdout.
pub fn say(line: &str) {
    println!("{line}");
}

/// Runs one `ci-storage` command.
pub fn run(config: Config) -> Result<(), Error> {
    if config.action == Action::Store {
        check_local_dir_readable(&config.local_dir)?;
    }
    let hints = hints::expand_hints(&config.hint_args, Path::new(&config.local_dir))?;
    let transport = Transport::open(config.host.clone(), &config.ssh)?;
    match config.action {
        Action::Store => {
            store(&config, &transport, hints)?;
            maintenance(&config, &transport)
        }
        Action::Load => load(&config, &transport, hints),
    }
}

fn check_local_dir_readable(local_dir: &str) -> Result<(), Error> {
    match std::fs::read_dir(local_dir) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Usage(format!(
            "--local-dir {local_dir}: cannot read it: {e}"
        ))),
    }
}

fn list_slots(config: &Config, transport: &Transport) -> Result<Vec<SlotInfo>, Error> {
    let output = transport.run_script(
        "LIST_SLOTS",
        scripts::LIST_SLOTS,
        std::slice::from_ref(&config.storage_dir),
    )?;
    Ok(slots::parse_list_slots(&output, config.max_age_sec))
}

fn load(config: &Config, transport: &Transport, hints: Vec<String>) -> Result<(), Error> {
    let is_layer = !config.filters.layer.is_empty();
    std::fs::create_dir_all(&config.local_dir)
        .with_context(|| format!("creating --local-dir {}", config.local_dir))?;
    let local_meta = SlotMeta::read_local(&config.local_dir)?;
    let hints = if hints.is_empty() {
        local_meta.hints.clone()
    } else {
        hints
    };
    let slots = list_slots(config, transport)?;
    let storage = if is_layer { "layer storage" } else { "storage" };
    let mut chosen: Option<String> = None;
    for id in &config.slot_ids {
        let prefix = format!("Checking slot-id=\"{id}\"...");
        if id == "*" {
            let choice = if is_layer {
                slots::best_layer_slot(&prefix, &slots, &local_meta.full_snapshot_history)
            } else {
                slots::best_full_slot(&prefix, &slots, &hints)
            };
            let Some(choice) = choice else {
                if is_layer {
                    say(&format!(
                        "{prefix} {storage} has no slots, so exiting with a no-op"
                    ));
                } else {
                    say(&format!(
                        "{prefix} {storage} has no slots, so cleaning {}",
                        config.local_dir
                    ));
                    clean(config, transport, hints)?;
                }
                return Ok(());
            };
            choice.log.iter().for_each(|l| say(l));
            chosen = Some(choice.id);
            break;
        } else if slots.iter().any(|s| &s.id == id) {
            say(&format!("{prefix} found in the {storage}, using it"));
            chosen = Some(id.clone());
            break;
        } else {
            say(&format!("{prefix} not found in the {storage}"));
        }
    }
    let Some(slot_id) = chosen else {
        return Err(Error::NotFound(format!(
            "none of the provided slot id(s) were found in the {storage}, aborting. Most \
             likely, the slot got evicted (see --storage-max-age-sec): store it again, or add \
             \"*\" as the last --slot-id to fall back to the best available slot (in GitHub \
             Actions, use \"Re-run all jobs\", not \"Re-run failed jobs\")."
        )));
    };
    let mut args = rsync::common_args(transport, Direction::Load, &config.filters);
    args.push(transport.rsync_location(&format!("{}/{slot_id}/", config.storage_dir)));
    args.push(format!("{}/", config.local_dir));
    rsync::run(transport, args, config.filters.verbose)?;
    if !is_layer {
        // Remember what we loaded: a later store dedups against it and reuses its hints.
        let mut meta = slots
            .iter()
            .find(|s| s.id == slot_id)
            .map(|s| s.meta.clone())
            .unwrap_or_default();
        meta.full_snapshot_history.insert(0, slot_id);
        if !hints.is_empty() {
            meta.hints = hints;
        }
        meta.write_local(&config.local_dir)?;
    }
    Ok(())
}

/// Empties the local dir (keeping excluded files) when `*` finds an empty storage.
fn clean(config: &Config, transport: &Transport, hints: Vec<String>) -> Result<(), Error> {
    let empty = tempfile_dir()?;
    let filters = rsync::Filters {
        layer: vec![],
        ..config.filters.clone()
    };
    let mut args = rsync::common_args(&Transport::Local, Direction::Load, &filters);
    args.push(format!("{}/", empty.display()));
    args.push(format!("{}/", config.local_dir));
    let result = rsync::run(transport, args, config.filters.verbose);
    let _ = std::fs::remove_dir(&empty);
    result?;
    SlotMeta {
        full_snapshot_history: vec![],
        hints,
    }
    .write_local(&config.local_dir)?;
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf, Error> {
    let template = meta::temp_dir().join(".ci-storage.empty-dir.XXXXXX");
    Ok(nix::unistd::mkdtemp(&template)
        .with_context(|| format!("creating {}", template.display()))?)
}

fn store(config: &Config, transport: &Transport, hints: Vec<String>) -> Result<(), Error> {
    let slot_id = &config.slot_ids[0];
    let is_layer = !config.filters.layer.is_empty();
    let local_meta = SlotMeta::read_local(&config.local_dir)?;
    let hints = if hints.is_empty() {
        local_meta.hints.clone()
    } else {
        hints
    };
    let slots = list_slots(config, transport)?;
    let loaded_from = (!is_layer)
        .then(|| local_meta.full_snapshot_history.first())
        .flatten();
    let link_dest = loaded_from
        .and_then(|id| slots.iter().find(|s| &s.id == id))
        .or(slots.first());
    let ts = chrono::Utc::now().timestamp();
    let slot_id_tmp = format!("{slot_id}.tmp.{ts}");
    let mut args = vec!["--inplace".to_owned()];
    if let Some(slot) = link_dest {
        args.push(format!("--link-dest=../{}/", slot.id));
    }
    args.extend(rsync::common_args(
        transport,
        Direction::Store,
        &config.filters,
    ));
    args.push(format!("{}/", config.local_dir));
    args.push(transport.rsync_location(&format!("{}/{slot_id_tmp}/", config.storage_dir)));
    rsync::run(transport, args, config.filters.verbose)?;

    let meta = (!is_layer).then(|| {
        let mut meta = local_meta.clone();
        meta.full_snapshot_history.insert(0, slot_id.clone());
        meta.hints = hints;
        meta
    });
    let output = transport.run_script(
        "COMMIT_SLOT",
        scripts::COMMIT_SLOT,
        &[
            config.storage_dir.clone(),
            slot_id_tmp,
            slot_id.clone(),
            meta.as_ref().map(SlotMeta::serialize).unwrap_or_default(),
        ],
    )?;
    print_indented(&output);
    if let Some(meta) = meta {
        meta.write_local(&config.local_dir)?;
    }
    Ok(())
}

fn maintenance(config: &Config, transport: &Transport) -> Result<(), Error> {
    let output = transport.run_script(
        "MAINTENANCE",
        scripts::MAINTENANCE,
        &[
            config.storage_dir.clone(),
            config.max_age_sec.to_string(),
            config.keep_hint_slots.to_string(),
        ],
    )?;
    print_indented(&output);
    Ok(())
}

fn print_indented(text: &str) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        say(&format!("  {line}"));
    }
}
