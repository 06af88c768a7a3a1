#!/bin/sh
# release-preflight.sh TAG NOTES: what the release workflow checks before
# GoReleaser publishes TAG (vX.Y.Z, or vX.Y.Z-rc.1):
#   - the chart's appVersion is X.Y.Z..., the image tag the chart pulls by
#     default (GoReleaser tags the image with the version without its v);
#   - CHANGELOG.md has a section for it ("## X.Y.Z ..." or "## vX.Y.Z ..."),
#     which is written to NOTES as the GitHub release's notes.
# It reads the repository it lives in.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 TAG NOTES" >&2; exit 2; }
tag=$1
notes=$2
cd "$(dirname "$0")/.."
case $tag in
v[0-9]*.[0-9]*.[0-9]*) ;;
*) echo "release-preflight: the tag $tag is not vX.Y.Z" >&2; exit 1 ;;
esac
version=${tag#v}
app=$(sed -n 's/^appVersion:[[:space:]]*["'"'"']\{0,1\}\([^"'"'"'[:space:]]*\).*$/\1/p' charts/deploybot/Chart.yaml)
if [ "$app" != "$version" ]; then
	echo "release-preflight: charts/deploybot/Chart.yaml has appVersion \"$app\" but the tag is $tag;" \
		"set appVersion: \"$version\" (the image tag the chart pulls by default), commit, and tag that commit" >&2
	exit 1
fi
if ! awk -v v="$version" '
	/^## / {
		if (found) exit
		h = $0
		sub(/^## +\[?v?/, "", h)
		if (index(h, v) == 1 && substr(h, length(v) + 1, 1) !~ /[0-9A-Za-z.+-]/) { found = 1; next }
	}
	found { print }
	END { if (!found) exit 1 }' CHANGELOG.md >"$notes"; then
	echo "release-preflight: CHANGELOG.md has no section \"## $version\" (or \"## v$version\");" \
		"name the Unreleased section after the release and its date" >&2
	exit 1
fi
echo "release-preflight: $tag: chart appVersion $app, notes from CHANGELOG.md ($(wc -l <"$notes") lines)"
