#!/bin/sh
# CI for a repository of plans: every plan must parse and pass the static checks
# (no network, no credentials). A failure prints file:line:column and exits 10.
#   usage: validate-plans.sh [PLAN…]   (default: plans/*.toml)
set -eu
if [ "$#" -eq 0 ]; then
  set -- plans/*.toml
fi
exec vsync-orchestrate validate "$@"
