#!/bin/sh
# sgsim stand-in for the product's harness/drone-git image (GitClone and DownloadManifests steps).
# A simulated pod has no network, so nothing is fetched: for GitClone the stand-in reports what
# drone-git would clone, from the DRONE_* variables the product sets, creates the clone directory
# (DRONE_WORKSPACE) and exits 0. Never prints the netrc password.
if [ -z "${DRONE_REMOTE_URL+x}" ]; then
    echo "would download the service's manifests (git clone) into /harness"
    exit 0
fi
case "${DRONE_BUILD_EVENT:-}" in
    tag) ref="tag ${DRONE_TAG:-}" ;;
    pull_request) ref="${DRONE_COMMIT_REF:-}" ;;
    *) if [ -n "${DRONE_COMMIT_SHA:-}" ]; then ref="commit ${DRONE_COMMIT_SHA}"
       elif [ -n "${DRONE_COMMIT_BRANCH+x}" ]; then ref="branch ${DRONE_COMMIT_BRANCH:-(unset)}"
       else ref="no build given"; fi ;;
esac
depth=${PLUGIN_DEPTH:+, depth $PLUGIN_DEPTH}
dir=${DRONE_WORKSPACE:-/harness}
repo=${DRONE_REMOTE_URL:-"the step's repository (its Git connector has no url in the scenario's fixtures)"}
echo "would clone $repo ($ref$depth) into $dir"
if [ -n "${DRONE_NETRC_USERNAME:-}" ]; then
    echo "with credentials for ${DRONE_NETRC_MACHINE:-the host} (user $DRONE_NETRC_USERNAME)"
fi
[ "${GIT_SSL_NO_VERIFY:-}" = true ] && echo "without SSL verification"
mkdir -p "$dir" || exit 1
echo "sgsim: the simulated pod has no network; $dir is created empty"
exit 0
