#!/bin/sh
# Runs every fuzz target (found with go test -list) for FUZZTIME each.
#
# Go 1.26's fuzz coordinator can end a run at the -fuzztime deadline with
# a bare "context deadline exceeded" and no failing input
# (https://go.dev/issue/75804, fixed in Go 1.27). Such a run is tried once
# more; a target fails when it writes a failing input, or fails twice.
set -u
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
list=$($GO test -list '^Fuzz' ./...) || { echo "$list"; exit 1; }
targets=$(echo "$list" | awk '/^Fuzz/ {t[++n] = $1} /^ok/ {for (i = 1; i <= n; i++) print t[i], $2; n = 0}')
[ -n "$targets" ] || { echo "no fuzz targets found"; exit 1; }
echo "$targets" | while read -r name pkg; do
	for try in 1 2; do
		out=$($GO test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1)
		status=$?
		echo "$out"
		[ $status -eq 0 ] && break
		if [ $try -eq 1 ] && echo "$out" | grep -q 'context deadline exceeded' && ! echo "$out" | grep -q 'Failing input written'; then
			echo "fuzz: $name stopped with a bare deadline and no failing input (go.dev/issue/75804); once more"
			continue
		fi
		exit 1
	done
done
