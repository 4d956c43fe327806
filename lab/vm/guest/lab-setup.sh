#!/bin/sh
# A lab guest's network and name, from words the lab put on the kernel command line:
#   lab.name=NAME lab.ip=ADDR/LEN lab.gw=GATEWAY lab.share=HOST_DIR
# (words the kernel does not know reach /proc/cmdline). lab.share is a host directory mounted
# read-only at /mnt/lab with hostfs: the lab hands the guest the product and its tools that way.
set -eu
name='' ip='' gw='' share=''
for word in $(cat /proc/cmdline); do
  case "$word" in
    lab.name=*) name="${word#lab.name=}" ;;
    lab.ip=*) ip="${word#lab.ip=}" ;;
    lab.gw=*) gw="${word#lab.gw=}" ;;
    lab.share=*) share="${word#lab.share=}" ;;
  esac
done
ip link set lo up
if [ -n "$name" ]; then
  hostname "$name"
  echo "$name" > /etc/hostname
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$name" > /etc/hosts
fi
if [ -n "$ip" ]; then
  ip link set vec0 up
  ip addr replace "$ip" dev vec0
fi
# A default route, so that multicast (mDNS) has a route out of vec0.
if [ -n "$gw" ]; then ip route replace default via "$gw" dev vec0; fi
if [ -n "$share" ]; then
  mkdir -p /mnt/lab
  mountpoint -q /mnt/lab || mount -t hostfs -o "$share",ro none /mnt/lab
fi
