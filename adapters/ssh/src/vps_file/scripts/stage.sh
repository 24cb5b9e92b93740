set -eu
p=$1; mode=$2; owner=$3; group=$4; spec=$5; k=$6
n="$p.new"; d=$(dirname -- "$p"); b=$(basename -- "$p")
keep() {
  [ -f "$p" ] || return 0
  ln -f -- "$p" "$k" 2>/dev/null || cp -p -- "$p" "$k"
}
IFS= read -r want
[ -d "$d" ] || { echo "directory $d does not exist" >&2; exit 3; }
if [ -f "$n" ] && [ ! -L "$n" ]; then
  have=$(sha256sum <"$n"); have=${have%% *}
  if [ "$have" = "$want" ] && [ "$(stat -c %a -- "$n")" = "$mode" ] &&
     { [ -z "$owner" ] || [ "$(stat -c %U -- "$n")" = "$owner" ] || [ "$(stat -c %u -- "$n")" = "$owner" ]; } &&
     { [ -z "$group" ] || [ "$(stat -c %G -- "$n")" = "$group" ] || [ "$(stat -c %g -- "$n")" = "$group" ]; }; then
    cat >/dev/null
    keep
    echo "unchanged $(stat -c '%d:%i:%y' -- "$n")"
    exit 0
  fi
fi
umask 077
t=$(mktemp -- "$d/.$b.XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat >"$t"
got=$(sha256sum <"$t"); got=${got%% *}
[ "$got" = "$want" ] || { echo "the value arrived incomplete or damaged" >&2; exit 7; }
chmod "$mode" "$t"
[ -z "$spec" ] || chown "$spec" "$t"
sync "$t"
mv -fT -- "$t" "$n"
trap - EXIT
keep
sync "$d" 2>/dev/null || sync
echo "written $(stat -c '%d:%i:%y' -- "$n")"
