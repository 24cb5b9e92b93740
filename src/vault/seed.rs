//! Creating a vault the way `vsync push` would (gen 0, no counter cell), for tests
//! and the demo.

use super::crypto::{self, Key};
use super::handle::Vault;
use super::layout::Layout;
use super::seal;
use super::stamp::Stamp;
use super::storage::{Meta, PutCondition, StorageError};
use base64::Engine;
use std::collections::BTreeMap;
use vsync_orchestrate_api::Passphrase;

pub enum SeedContent {
    /// Runtime layout JSON: `{"kv":…,"assets":…}`.
    Json {
        kv: BTreeMap<String, String>,
        assets: BTreeMap<String, Vec<u8>>,
    },
    /// CLI layout: files zipped under the vault folder path, like `zip -r`.
    Files(Vec<(String, Vec<u8>)>),
}

impl Vault {
    pub async fn seed(
        &self,
        layout: Layout,
        passphrase: &Passphrase,
        content: &SeedContent,
    ) -> Result<Stamp, StorageError> {
        let stamp = Stamp::now();
        let plain = match (layout, content) {
            (Layout::Runtime, SeedContent::Json { kv, assets }) => {
                let assets: BTreeMap<_, _> = assets
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            base64::engine::general_purpose::STANDARD.encode(v),
                        )
                    })
                    .collect();
                serde_json::to_vec(&serde_json::json!({ "kv": kv, "assets": assets }))
                    .expect("serialises")
            }
            (Layout::Cli, SeedContent::Files(files)) => {
                let entries: Vec<(&str, &[u8])> = files
                    .iter()
                    .map(|(n, b)| (n.as_str(), b.as_slice()))
                    .collect();
                seal::seal(&stamp, &super::zip::write_stored(&entries))
            }
            (Layout::Cli, SeedContent::Json { kv, .. }) => {
                let env: String = kv.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                let name = "infra/vault/env/.env";
                seal::seal(&stamp, &super::zip::write_stored(&[(name, env.as_bytes())]))
            }
            (Layout::Runtime, SeedContent::Files(_)) => {
                panic!("runtime-layout vaults hold JSON, not files")
            }
        };
        let envelope = crypto::encrypt(&Key::derive(passphrase, &self.kdf), &plain);
        let none = Meta::new();
        self.storage
            .put(
                &self.key(&layout.bundle_name(&stamp)),
                envelope,
                PutCondition::IfAbsent,
                &none,
            )
            .await?;
        let pointer = match layout {
            Layout::Cli => stamp.as_str().as_bytes().to_vec(),
            Layout::Runtime => seal::seal(&stamp, br#"{"gen":0}"#),
        };
        self.storage
            .put(
                &self.key(layout.pointer_name()),
                pointer,
                PutCondition::IfAbsent,
                &none,
            )
            .await?;
        Ok(stamp)
    }
}
