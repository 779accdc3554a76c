#!/bin/sh
# nginx with its resolver set to the DNS server of the container's network (127.0.0.11 under Docker,
# the network's gateway under podman), read from /etc/resolv.conf.
set -eu
nameserver=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)
echo "resolver $nameserver valid=1s ipv6=off;" > /tmp/nginx-resolver.conf
exec nginx -g 'daemon off;'
