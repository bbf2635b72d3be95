#!/bin/sh
# Render prometheus/alertmanager.yml for the compose demo, as its header says
# deployments do with `envsubst '${PAGER_WEBHOOK_URL} ${TICKET_WEBHOOK_URL}'`
# (the Alertmanager image has no envsubst): replace exactly those two
# placeholders and leave every other `$` alone.
#   usage: render-config.sh TEMPLATE OUTPUT
set -eu
: "${PAGER_WEBHOOK_URL:?set PAGER_WEBHOOK_URL}" "${TICKET_WEBHOOK_URL:?set TICKET_WEBHOOK_URL}"
sed -e "s|\${PAGER_WEBHOOK_URL}|${PAGER_WEBHOOK_URL}|g" \
    -e "s|\${TICKET_WEBHOOK_URL}|${TICKET_WEBHOOK_URL}|g" "$1" > "$2"
