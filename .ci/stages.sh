# CI's stages (sourced by .ci/run; tests/test_ci_stages.py runs it with small budgets).
# `stage NAME BUDGET_S CMD...` runs CMD within BUDGET_S seconds, or within what is left of
# CI's own deadline (`limit`, seconds from `start`) if that is less; when time is up its
# process group is stopped (TERM, then KILL 60 s later). After a failed or stopped stage the
# later ones are not run; `summary` prints every stage's time and verdict.
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

summary() {
	echo "ci: ---- stage times ----"
	printf '%s\n' "${times[@]}"
	echo "ci: finished in $(($(date +%s) - start))s"
}
