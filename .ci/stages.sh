# CI's stages (sourced by .ci/run; tests/test_ci_stages.py runs it with small budgets).
# `stage NAME BUDGET_S CMD...` runs CMD within BUDGET_S seconds, or within what is left of
# CI's own deadline (`limit`, seconds from `start`) if that is less; when time is up its
# process group is stopped (TERM, then KILL 60 s later). After a failed or stopped stage the
# later ones are not run; `summary` prints every stage's time and verdict.
#
# `stage_beside NAME BUDGET CMD...` starts CMD in the background at SCHED_IDLE (it only gets
# the CPU the stages after it leave idle), its output in results/NAME.log; `stage_join` waits
# for it, prints that log and records its time. A failed or stopped stage in between stops it.
start=$(date +%s)
limit=${KTLSKIT_CI_LIMIT:-5100}
min_stage=${KTLSKIT_CI_MIN_STAGE:-60}  # a stage needs at least this much time left
times=()
failed=0

stage() {
	local name=$1 budget=$2 t0 rc=0 left verdict
	shift 2
	left=$((limit - ($(date +%s) - start)))
	if [ "$failed" -ne 0 ] || [ "$left" -lt "$min_stage" ]; then
		times+=("$(printf '%-28s %5s   %s' "$name" - \
			"not run ($([ "$failed" -ne 0 ] && echo "an earlier stage failed" || echo "${left}s left"))")")
		failed=1
		return 0
	fi
	[ "$budget" -le "$left" ] || budget=$left
	echo "ci: ---- $name (budget ${budget}s) ----"
	t0=$(date +%s)
	timeout --kill-after=60 "$budget" "$@" || rc=$?
	case $rc in
	0) verdict=ok ;;
	124 | 137) verdict="STOPPED at its ${budget}s budget" ;;
	*) verdict="FAILED ($rc)" ;;
	esac
	times+=("$(printf '%-28s %5ds  %s' "$name" $(($(date +%s) - t0)) "$verdict")")
	[ $rc -eq 0 ] || failed=1
	return 0
}

beside_name="" beside_pid="" beside_t0=0 beside_log=""

stage_beside() {
	local name=$1 budget=$2 left
	shift 2
	left=$((limit - ($(date +%s) - start)))
	if [ "$failed" -ne 0 ] || [ "$left" -lt "$min_stage" ]; then
		stage "$name" "$budget" "$@"  # records it as not run, and why
		return 0
	fi
	[ "$budget" -le "$left" ] || budget=$left
	beside_name=$name beside_t0=$(date +%s)
	mkdir -p results
	beside_log=results/$(printf '%s' "$name" | tr -c 'A-Za-z0-9-' _).log
	echo "ci: ---- $name (budget ${budget}s), at idle priority beside the next stages, in $beside_log ----"
	(exec chrt -i 0 nice -n 19 timeout --kill-after=60 "$budget" "$@") >"$beside_log" 2>&1 &
	beside_pid=$!
}

stage_join() {
	local rc=0 verdict
	[ -n "$beside_pid" ] || return 0
	if [ "$failed" -ne 0 ]; then
		kill -TERM "$beside_pid" 2>/dev/null || true
		wait "$beside_pid" || true
		verdict="stopped (an earlier stage failed)"
	else
		wait "$beside_pid" || rc=$?
		case $rc in
		0) verdict="ok, beside the stages before" ;;
		124 | 137) verdict="STOPPED at its budget" ;;
		*) verdict="FAILED ($rc)" ;;
		esac
		[ $rc -eq 0 ] || failed=1
	fi
	echo "ci: ---- $beside_name (joined: $verdict) ----"
	cat "$beside_log"
	times+=("$(printf '%-28s %5ds  %s' "$beside_name" $(($(date +%s) - beside_t0)) "$verdict")")
	beside_pid=""
	return 0
}

summary() {
	if [ -n "$beside_pid" ]; then  # CI ended before the join: never leave it running
		kill -TERM "$beside_pid" 2>/dev/null || true
		times+=("$(printf '%-28s %5s   %s' "$beside_name" - "stopped (CI ended first)")")
	fi
	echo "ci: ---- stage times ----"
	printf '%s\n' "${times[@]}"
	echo "ci: finished in $(($(date +%s) - start))s"
}
