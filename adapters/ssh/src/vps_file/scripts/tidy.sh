set -eu
p=$1; k=$2; d=$(dirname -- "$p")
if [ -e "$k" ]; then mv -fT -- "$k" "$p.prev"; fi
sync "$d" 2>/dev/null || sync
