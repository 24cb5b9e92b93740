set -u
p=$1
[ -e "$p" ] || { echo "$p does not exist" >&2; exit 3; }
exec cat -- "$p"
