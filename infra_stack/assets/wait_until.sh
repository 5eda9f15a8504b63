# wait_until SECONDS COMMAND...: succeeds as soon as COMMAND does, fails after SECONDS of trying.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 5
  done
}
answers() { curl -fsS -o /dev/null --max-time 4 "$1"; }
