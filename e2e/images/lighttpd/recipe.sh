# shellcheck shell=bash disable=SC2034 # PACKAGES is read by chroot-setup.sh
# lighttpd as Debian packages it (there is no official image; the common ones
# run Debian's or Alpine's package as root): root at start, drops to www-data
# (33:33) by server.username, /etc/lighttpd/lighttpd.conf, /var/www/html, port 80.
# Errors go to /var/log/lighttpd/error.log as Debian has it: lighttpd opens the
# log after dropping to www-data, which cannot open the container's stderr pipe.
PACKAGES=(lighttpd)
