//! The boot prober on every platform's delivery path: while the real binary runs a
//! rotation, an "app" boots every few milliseconds the way a process of that
//! platform gets its passphrase (Secrets Manager read at task start; a Kubernetes
//! Secret the `kubernetes_secret` store switches, or one External Secrets fills; a
//! Cloud Run revision's pinned version; a Vercel deployment's environment), then
//! reads the vault and decrypts. Every boot
//! that fails with a wrong passphrase is counted and must fall inside the delivery
//! window the run reported. The printed figures are the README's delivery table.
//!
//! The file path (in-process, no service) is `tests/boot_prober.rs`.

#[path = "support/mod.rs"]
mod support;

#[path = "boot_prober_platforms/probe.rs"]
mod probe;
// secrets_manager + eks: moto (and the Kubernetes fake with its External Secrets controller)
#[path = "boot_prober_platforms/eks.rs"]
mod eks;
#[path = "boot_prober_platforms/secrets_manager.rs"]
mod secrets_manager;
// cloud_run + vercel: the GCP and Vercel REST fakes
#[path = "boot_prober_platforms/cloud_run.rs"]
mod cloud_run;
#[path = "../adapters/gcp/tests/fake/mod.rs"]
mod gcp_fake;
#[path = "boot_prober_platforms/kubernetes_secret.rs"]
mod kubernetes_secret;
#[path = "boot_prober_platforms/vercel.rs"]
mod vercel;
#[path = "../adapters/vercel/tests/fake/mod.rs"]
mod vercel_fake;

vsync_orchestrate_testkit::main! {
    tests: [
        #[multi_thread(2)] secrets_manager::boots_reading_awscurrent_fail_only_inside_the_delivery_window,
        #[multi_thread(2)] eks::boots_reading_the_synced_secret_fail_only_inside_the_delivery_window,
        #[multi_thread(2)] cloud_run::boots_of_the_serving_revision_fail_only_inside_the_delivery_window,
        #[multi_thread(2)] vercel::cold_starts_of_the_production_deployment_fail_only_inside_the_delivery_window,
        #[multi_thread(2)] kubernetes_secret::boots_reading_the_secret_fail_only_inside_the_store_window,
    ],
}
