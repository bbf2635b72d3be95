#!/bin/sh
# Render prometheus/alertmanager.yml for the compose demo, as its header says
# deployments do with `envsubst '${PAGER_WEBHOOK_URL} ${TICKET_WEBHOOK_URL}'`
# (the Alertmanager image has no envsubst): replace exactly those two
# placeholders and leave every other `$` alone. The URLs are inserted literally
# (awk reads them from ENVIRON and splices them in with index/substr, so `&`,
# `|` and `\` are not special), in one pass, as envsubst does.
#   usage: render-config.sh TEMPLATE OUTPUT
set -eu
: "${PAGER_WEBHOOK_URL:?set PAGER_WEBHOOK_URL}" "${TICKET_WEBHOOK_URL:?set TICKET_WEBHOOK_URL}"
awk '
BEGIN {
    key[1] = "${PAGER_WEBHOOK_URL}";  value[1] = ENVIRON["PAGER_WEBHOOK_URL"]
    key[2] = "${TICKET_WEBHOOK_URL}"; value[2] = ENVIRON["TICKET_WEBHOOK_URL"]
}
{
    rest = $0
    out = ""
    while (1) {
        at = 0
        for (k = 1; k <= 2; k++) {
            i = index(rest, key[k])
            if (i > 0 && (at == 0 || i < at)) { at = i; found = k }
        }
        if (at == 0) break
        out = out substr(rest, 1, at - 1) value[found]
        rest = substr(rest, at + length(key[found]))
    }
    print out rest
}' "$1" > "$2"
