#!/usr/bin/env bash
# Fuzz every parser of vault content, and the plan loader, with cargo-fuzz (libFuzzer) on the stable toolchain.
#
#   bash .ci/fuzz.sh                                  # CI: all targets, about 60 s in all
#   FUZZ_SECONDS=3600 bash .ci/fuzz.sh                # an hour, split between the targets
#   FUZZ_SECONDS=600 bash .ci/fuzz.sh audit_parse     # ten minutes on one target
#
# cargo-fuzz is installed once into ${CI_CACHE_DIR:-target/ci} (pinned version, ~2 min
# to build). cargo-fuzz passes `-Z` flags to rustc (sanitizer, coverage passes), which
# a stable rustc accepts only with RUSTC_BOOTSTRAP=1; nothing else needs a nightly.
# The corpus grows across runs in the cache; the seeds are made afresh each run from
# the conformance vectors (tests/test-vectors), plans/*.toml, the malformed-plan corpus
# (tests/malformed_plans) and a few hand-written inputs.
# A crash is saved under the cache's fuzz/artifacts/<target>/, printed with the
# command that replays it, and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE="${CI_CACHE_DIR:-$ROOT/target/ci}"
CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
VECTORS="${VSYNC_TEST_VECTORS:-$ROOT/tests/test-vectors}"
# The corpus is part of the tree, so a missing one is a broken checkout or a bad
# VSYNC_TEST_VECTORS, never a reason to fuzz from the hand-written seeds alone.
[ -d "$VECTORS/rqe1-decrypt" ] || { echo "fuzz: no conformance vectors at $VECTORS" >&2; exit 1; }
ALL_TARGETS=(rqe1_decrypt rqem0001_unseal vsync_config_decode counter_parse audit_parse vault_inspect plan_load)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

log() { printf '[fuzz %5ss] %s\n' "$SECONDS" "$*"; }

# --- cargo-fuzz, cached -------------------------------------------------------------
FUZZ_ROOT="$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
if [ ! -x "$FUZZ_ROOT/bin/cargo-fuzz" ]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $FUZZ_ROOT"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$FUZZ_ROOT.tmp" --quiet
  rm -rf "$FUZZ_ROOT" && mv "$FUZZ_ROOT.tmp" "$FUZZ_ROOT"
fi
export PATH="$FUZZ_ROOT/bin:$PATH"
export RUSTC_BOOTSTRAP=1

# --- build --------------------------------------------------------------------------
# Kept in the cache: dependencies are compiled once per machine, only this crate and
# the targets again after a change.
TARGET_DIR="$CACHE/fuzz-target"
log "building ${#TARGETS[@]} target(s) (release, debug assertions, AddressSanitizer)"
for t in "${TARGETS[@]}"; do
  cargo fuzz build -O -a --target-dir "$TARGET_DIR" "$t"
done

# --- seeds from the conformance vectors and hand-written inputs ----------------------
WORK="$CACHE/fuzz"
SEEDS="$WORK/seeds"
rm -rf "$SEEDS"
for t in "${ALL_TARGETS[@]}"; do mkdir -p "$SEEDS/$t" "$WORK/corpus/$t" "$WORK/artifacts/$t"; done
cp "$VECTORS"/rqe1-decrypt/*.bin "$VECTORS"/rqe1-decrypt-error/*.bin "$SEEDS/rqe1_decrypt/"
for v in bundle-corrupt wrong-passphrase unsupported-spec-version; do
  cp "$VECTORS/error-taxonomy/$v.bin" "$SEEDS/rqe1_decrypt/taxonomy-$v.bin"
done
cp "$VECTORS"/rqem0001-manifest/*.bin "$SEEDS/rqem0001_unseal/"
cp "$VECTORS"/config-blob/*.bin "$SEEDS/vsync_config_decode/"
cp "$VECTORS/error-taxonomy/config-unsupported-version.bin" "$SEEDS/vsync_config_decode/"
seed() { printf "$2" >"$SEEDS/$1/$3"; }
seed rqem0001_unseal '20260523-114201' cli-pointer
seed rqem0001_unseal '99991231-235959\n' last-stamp
seed counter_parse '{"gen":4,"prev_gen":3,"rotated_at":"2026-05-23T11:42:07.498Z"}' cli-cell
seed counter_parse '{"gen":18446744073709551615,"x":[1,{"y":null}]}' max-gen
seed counter_parse '{"gen":-1}' negative
seed counter_parse '{"gen":1.5e3}' float
seed counter_parse ' \n' blank
H='ts,action,version_ts,hostname,local_ip,os_user,git_email,vsync_version,bun_version,meta'
seed audit_parse "$H\n" header-only
seed audit_parse "$H"'\n2026-05-23T11:42:07.512Z,rotate,20260523-114207,ops-laptop.local,10.0.4.17,alice,alice@example.com,0.17.0,1.3.0,"{""note"":""a,b\nc"",""gen"":4}"\n' worked-example
seed audit_parse "$H\r\n2026,push,20260101-000000,h,,u,,0.17.0,1.3.0,\r\n2026,pull,x,h,,u,,v,,\"open" crlf-unterminated
seed audit_parse 'host\037user\037{"note":"q\\"uote, comma\\nnewline"}' row-fields
# vault_inspect: a selector byte (1 latest, 2 manifest, 4 latest.manifest, 8 latest.meta,
# 16 CLI bundle, 32 runtime bundle) and the bodies, split at 0xFF; a bundle body that is
# not RQE… is encrypted under the fixed key.
seed vault_inspect '\x15''20260523-114201\xff{"gen":2}\xffRQEM000120260523-114201PK\x05\x06' cli
seed vault_inspect '\x2a''RQEM000120260523-114201{"gen":0}\xff{"gen":0}\xff{"kv":{"A":"b"},"assets":{"f":"aGk="}}' runtime
seed vault_inspect '\x3f''99991231-235959\xffRQEM000120260523-114201\xff{"gen":18446744073709551615}\xff[]\xffRQE2\xff{"A":1}' both
# plan_load: every example plan and every file of the malformed-plan corpus (the
# directory and the 10 MB file are made by the test, not kept in the tree).
# Files over 64 KiB are left out: libFuzzer sizes its inputs after the largest seed.
cp plans/*.toml "$SEEDS/plan_load/"
find tests/malformed_plans -maxdepth 1 -type f -size -64k | while read -r f; do
  cp "$f" "$SEEDS/plan_load/malformed-${f##*/}"
done
seed plan_load 'env = "prod"\n[vault]\ndir = "/v"\nprefix = "a/prod/"\nsalt = "s"\n[[store]]\ntype = "file"\npath = "/p"\n' minimal

# --- run ----------------------------------------------------------------------------
per=$(( FUZZ_SECONDS / ${#TARGETS[@]} ))
(( per >= 1 )) || per=1
log "running each target for ${per}s"
failed=()
printf '%-22s %8s %12s %10s %8s\n' target seconds executions "exec/s" corpus >"$WORK/summary.txt"
for t in "${TARGETS[@]}"; do
  out="$WORK/$t.log"
  status=0
  cargo fuzz run -O -a --target-dir "$TARGET_DIR" "$t" "$WORK/corpus/$t" "$SEEDS/$t" -- \
    -max_total_time="$per" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts/$t/" >"$out" 2>&1 || status=$?
  execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$out" | tail -1)
  rate=$(awk '/stat::average_exec_per_sec:/ {print $2}' "$out" | tail -1)
  corpus=$(find "$WORK/corpus/$t" -type f | wc -l)
  printf '%-22s %8s %12s %10s %8s\n' "$t" "$per" "${execs:-?}" "${rate:-?}" "$corpus" >>"$WORK/summary.txt"
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $status); last lines of $out:" >&2
    tail -40 "$out" >&2
    for a in "$WORK/artifacts/$t"/*; do
      [ -e "$a" ] || continue
      echo "  replay: RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a $t $a" >&2
    done
  fi
done
cat "$WORK/summary.txt"
log "done"
echo "fuzz: $(( ${#TARGETS[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
