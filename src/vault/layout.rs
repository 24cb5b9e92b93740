//! The two storage layouts upstream uses (`docs/wire-format.md` §2.2, §2.3), and
//! which one a prefix holds.

use super::stamp::Stamp;
use super::storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// What the vsync CLI writes: `latest`, `versions/<stamp>.enc`, `latest.manifest`.
    Cli,
    /// What the runtime libraries read: `manifest`, `v=<stamp>`, `latest.meta`.
    Runtime,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(rename_all = "snake_case")]
pub enum LayoutChoice {
    #[default]
    Auto,
    Cli,
    Runtime,
}

/// Both counter cells, written on every rotation whatever the layout, so the CLI
/// and the runtime libraries both see the new generation.
pub const COUNTER_CELLS: [&str; 2] = ["latest.manifest", "latest.meta"];

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Cli => "cli",
            Layout::Runtime => "runtime",
        }
    }

    pub fn pointer_name(self) -> &'static str {
        match self {
            Layout::Cli => "latest",
            Layout::Runtime => "manifest",
        }
    }

    pub fn bundle_name(self, stamp: &Stamp) -> String {
        match self {
            Layout::Cli => format!("versions/{stamp}.enc"),
            Layout::Runtime => format!("v={stamp}"),
        }
    }

    /// The counter cell this layout's own reader looks at.
    pub fn counter_name(self) -> &'static str {
        match self {
            Layout::Cli => "latest.manifest",
            Layout::Runtime => "latest.meta",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    Found(Layout),
    /// Neither pointer exists: vault not found (exit 5).
    Nothing,
    /// Both pointers exist and the plan said `auto`.
    Both,
}

/// Which layout `prefix` holds. A forced choice is still checked to exist.
pub async fn detect(
    storage: &dyn Storage,
    prefix: &str,
    choice: LayoutChoice,
) -> Result<Detected, StorageError> {
    let has = |l: Layout| {
        let key = format!("{prefix}{}", l.pointer_name());
        async move { storage.head(&key).await.map(|h| h.is_some()) }
    };
    Ok(match choice {
        LayoutChoice::Cli => {
            if has(Layout::Cli).await? {
                Detected::Found(Layout::Cli)
            } else {
                Detected::Nothing
            }
        }
        LayoutChoice::Runtime => {
            if has(Layout::Runtime).await? {
                Detected::Found(Layout::Runtime)
            } else {
                Detected::Nothing
            }
        }
        LayoutChoice::Auto => match (has(Layout::Cli).await?, has(Layout::Runtime).await?) {
            (true, true) => Detected::Both,
            (true, false) => Detected::Found(Layout::Cli),
            (false, true) => Detected::Found(Layout::Runtime),
            (false, false) => Detected::Nothing,
        },
    })
}
