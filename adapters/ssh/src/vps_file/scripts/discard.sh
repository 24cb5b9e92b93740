set -eu
p=$1; want=$2; n="$p.new"
rm -f -- "$3"
[ -e "$n" ] || { echo absent; exit 0; }
if [ -n "$want" ] && [ "$(stat -c '%d:%i:%y' -- "$n")" != "$want" ]; then
  echo "$n is not the file this run staged (staged again since); left in place" >&2
  exit 5
fi
rm -f -- "$n"
d=$(dirname -- "$p"); sync "$d" 2>/dev/null || true
echo removed
