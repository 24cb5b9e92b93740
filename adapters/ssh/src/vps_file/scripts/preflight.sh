set -u
p=$1; d=$(dirname -- "$p")
for c in mktemp sha256sum stat sync mv cp cat chmod chown dirname basename rm ln; do
  command -v "$c" >/dev/null 2>&1 || { echo "required command $c is missing" >&2; exit 6; }
done
[ -d "$d" ] || { echo "directory $d does not exist" >&2; exit 3; }
[ -w "$d" ] && [ -x "$d" ] || { echo "directory $d is not writable by $(id -un)" >&2; exit 4; }
[ -d "$p.new" ] && [ ! -L "$p.new" ] && { echo "$p.new is a directory, where stage writes the staged file; remove it first" >&2; exit 6; }
if [ -e "$p.new" ]; then echo "staged present"; else echo "staged -"; fi
if [ -f "$p" ]; then
  [ -r "$p" ] || { echo "$p is not readable by $(id -un)" >&2; exit 4; }
  echo "current"
  exec cat -- "$p"
elif [ -e "$p" ]; then
  echo "$p is not a regular file" >&2; exit 6
fi
echo "current -"
