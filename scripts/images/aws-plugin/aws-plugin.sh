#!/bin/sh
# sgsim stand-in for the product's AWS SAM and Serverless.com plugin images (and the manifest
# download step): reports which AWS credentials the real image would use and the command it would
# run, from the PLUGIN_* variables the product sets. Never prints the secret key. Exits 0.
sa_dir=/var/run/secrets/kubernetes.io/serviceaccount
if [ -n "${PLUGIN_AWS_ACCESS_KEY:-}" ] && [ -n "${PLUGIN_AWS_SECRET_KEY:-}" ]; then
    echo "using the connector's access key ${PLUGIN_AWS_ACCESS_KEY}"
elif [ -n "${PLUGIN_SAM_DIR+x}${PLUGIN_SERVERLESS_DIR+x}" ]; then
    if [ -f "$sa_dir/token" ]; then
        p=$(cut -d. -f2 "$sa_dir/token" | tr '_-' '/+')
        while [ $(( ${#p} % 4 )) -ne 0 ]; do p="$p="; done
        sub=$(echo "$p" | base64 -d 2>/dev/null | sed -n 's/.*"sub":"system:serviceaccount:[^:"]*:\([^"]*\)".*/\1/p')
        echo "no access key: using the pod's service account ${sub:-unknown} (token at $sa_dir/token)"
    else
        echo "no access key and no service account token at $sa_dir/token: no AWS credentials"
    fi
fi
if [ -n "${PLUGIN_AWS_ROLE_ARN:-}" ]; then
    if [ -n "${PLUGIN_AWS_STS_EXTERNAL_ID:-}" ]; then
        echo "assuming role ${PLUGIN_AWS_ROLE_ARN} with external id ${PLUGIN_AWS_STS_EXTERNAL_ID}"
    else
        echo "assuming role ${PLUGIN_AWS_ROLE_ARN}"
    fi
fi
[ -n "${PLUGIN_REGION:-}" ] && echo "region ${PLUGIN_REGION}"
join() { printf '%s' "$*" | sed 's/  */ /g; s/ $//'; }
if [ -n "${PLUGIN_SAM_DIR+x}" ]; then
    dir=${PLUGIN_SAM_DIR:-.}
    tpl=${PLUGIN_SAM_TEMPLATE_FILE_PATH:+ --template-file $PLUGIN_SAM_TEMPLATE_FILE_PATH}
    if [ -n "${PLUGIN_BUILD_COMMAND_OPTIONS+x}" ]; then
        echo "would run in $dir: $(join sam build$tpl ${PLUGIN_BUILD_COMMAND_OPTIONS})"
    else
        stack=${PLUGIN_STACK_NAME:+ --stack-name $PLUGIN_STACK_NAME}
        region=${PLUGIN_REGION:+ --region $PLUGIN_REGION}
        echo "would run in $dir: $(join sam deploy$tpl$stack$region ${PLUGIN_DEPLOY_COMMAND_OPTIONS:-})"
    fi
elif [ -n "${PLUGIN_SERVERLESS_DIR+x}" ]; then
    dir=${PLUGIN_SERVERLESS_DIR:-.}
    cfg=${PLUGIN_SERVERLESS_YAML_CUSTOM_PATH:+ --config $PLUGIN_SERVERLESS_YAML_CUSTOM_PATH}
    stage=${PLUGIN_SERVERLESS_STAGE:+ --stage $PLUGIN_SERVERLESS_STAGE}
    region=${PLUGIN_REGION:+ --region $PLUGIN_REGION}
    if [ -n "${PLUGIN_PACKAGE_COMMAND_OPTIONS+x}" ]; then
        echo "would run in $dir: $(join serverless package$cfg$stage$region ${PLUGIN_PACKAGE_COMMAND_OPTIONS})"
    elif [ -n "${PLUGIN_DEPLOY_COMMAND_OPTIONS+x}" ]; then
        echo "would run in $dir: $(join serverless deploy$cfg$stage$region ${PLUGIN_DEPLOY_COMMAND_OPTIONS})"
    else
        echo "would run in $dir: $(join serverless deploy list$cfg$stage$region) (saving the current version for rollback)"
    fi
else
    echo "would download the service's manifests (git clone) into /harness"
fi
exit 0
