#!/bin/sh
# nginx with its resolver set to the DNS server of the container's network (127.0.0.11 under Docker,
# the network's gateway under podman), read from /etc/resolv.conf; the body limits of the replicas
# (MAX_PREDICT_MB for every route, MAX_UPLOAD_MB and room for the form around the file for uploads);
# and the addresses of the load balancers in front (TRUSTED_BALANCERS, space-separated addresses or
# CIDR ranges) whose X-Forwarded-Proto is kept.
set -eu
nameserver=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)
echo "resolver $nameserver valid=1s ipv6=off;" > /tmp/nginx-resolver.conf
echo "client_max_body_size ${MAX_PREDICT_MB:-32}m;" > /tmp/nginx-body-limit.conf
echo "client_max_body_size $(( ${MAX_UPLOAD_MB:-512} + 8 ))m;" > /tmp/nginx-upload-limit.conf
: > /tmp/nginx-balancers.conf
for balancer in ${TRUSTED_BALANCERS:-}; do
    echo "$balancer 1;" >> /tmp/nginx-balancers.conf
done
exec nginx -g 'daemon off;'
