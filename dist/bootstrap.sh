#!/bin/sh
# hafw first boot: the body of every node's user data.
#
# Not run by itself: `hafw plan user-data` (and `hafw plan terraform`, as
# a templatefile() template) prepend the parameters below and the
# functions hafw_deployment (the deployment file) and hafw_unit (the
# systemd unit), then this text. cloud-init runs a user data that starts
# with `#!/bin/sh` as it is, once per instance.
#
# Parameters (set by the prepended part):
#   HAFW_NODE            this node's name in the deployment file
#   HAFW_KEY_FILE        the node's key_file (absolute path)
#   HAFW_KEY_B64         the pair's HA key, base64
#   HAFW_PACKAGE_URL     empty: the image already has hafw; otherwise a URL
#                        of a Debian package or of the hafw binary itself
#                        (installed at /usr/bin/hafw), told apart by their
#                        first bytes; plain http needs HAFW_PACKAGE_SHA256
#   HAFW_PACKAGE_SHA256  empty, or the SHA-256 the download must have
#   HAFW_DEPLOYMENT_TRIM 1 when the deployment file has no final newline
#
# Test-only knobs, read from the environment (never set on a real node):
#   HAFW_BOOTSTRAP_NO_START=1  write everything but do not start the unit
#                              (the lab starts `hafw run` itself, reading
#                              hafw.env as the unit's ExecStart does)
#   HAFW_BOOTSTRAP_ROOT=DIR    write every file under DIR instead of /, and
#                              set no host name on the running system
#                              (DIR/etc/hostname only); a .deb is refused
#
# Safe to run again: every file is written to a temporary name and renamed;
# an existing /etc/hafw/deployment.toml that differs is kept (config sync
# or an operator changed it since the first boot).
#
# This text is also a Terraform template: it must never contain a dollar
# or percent sign followed by an opening brace.

set -eu
umask 077

set +u
ROOT=$HAFW_BOOTSTRAP_ROOT
NO_START=$HAFW_BOOTSTRAP_NO_START
set -u

mkdir -p "$ROOT/var/log"
LOG=$ROOT/var/log/hafw-bootstrap.log
STEP=start

# Every message goes to the log file and to stderr, which cloud-init copies
# to the console and /var/log/cloud-init-output.log.
say() {
	printf '%s hafw-bootstrap[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STEP" "$*" | tee -a "$LOG" >&2
}

die() {
	say "FAILED: $*"
	exit 1
}

on_exit() {
	code=$?
	if [ "$code" -ne 0 ]; then
		say "FAILED with exit status $code; the commands' output is in $LOG"
	fi
}
trap on_exit EXIT

# fetch URL FILE: curl, else wget (wget has no file:// URLs).
fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 5 --retry-delay 2 -o "$2" "$1" >>"$LOG" 2>&1 ||
			die "cannot download $1 (curl failed); check the URL (variable package_url) and the instance's route to it"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -t 5 -O "$2" "$1" >>"$LOG" 2>&1 ||
			die "cannot download $1 (wget failed); check the URL (variable package_url) and the instance's route to it"
	else
		die "neither curl nor wget is installed: install one in the image, or use an image that has hafw (package_url empty)"
	fi
}

# atomic_write DEST MODE: stdin to DEST via a temporary file in DEST's
# directory, owned by root, then renamed over DEST.
atomic_write() {
	tmp=$1.tmp.$$
	cat >"$tmp"
	chown 0:0 "$tmp"
	chmod "$2" "$tmp"
	mv -f "$tmp" "$1"
}

say "node $HAFW_NODE: first boot"
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
	die "must run as root (cloud-init runs user data as root)"
fi

# ---- 0. the metadata service, root only, before the key is anywhere
# It serves this user data, key included, to any process that asks. hafw's
# ruleset has the same rule while it runs; this table of its own also
# covers the time before hafw starts and after it stops, until reboot.
STEP=metadata
if [ -n "$ROOT" ]; then
	say "under HAFW_BOOTSTRAP_ROOT: metadata rule not installed"
elif command -v nft >/dev/null 2>&1; then
	nft -f - >>"$LOG" 2>&1 <<'HAFW_NFT_EOF' || die "nft refused the metadata rule; see $LOG"
table inet hafw_metadata {}
delete table inet hafw_metadata
table inet hafw_metadata {
	chain output {
		type filter hook output priority filter; policy accept;
		ip daddr 100.100.100.200 meta skuid != 0 counter drop comment "metadata service: root only"
	}
}
HAFW_NFT_EOF
	say "metadata service limited to root (table inet hafw_metadata)"
else
	say "WARNING: nft is not installed: until hafw runs, any process can read the key from the metadata service"
fi

# ---- 1. hafw itself
STEP=install
BIN=$ROOT/usr/bin/hafw
if [ -n "$HAFW_PACKAGE_URL" ]; then
	case "$HAFW_PACKAGE_URL" in
	http://*)
		[ -n "$HAFW_PACKAGE_SHA256" ] ||
			die "$HAFW_PACKAGE_URL is plain http and no package_sha256 is given: anyone on the path could replace what runs as root; use https, or give its SHA-256"
		;;
	esac
	work=$(mktemp -d)
	pkg=$work/hafw.download
	say "downloading $HAFW_PACKAGE_URL"
	fetch "$HAFW_PACKAGE_URL" "$pkg"
	if [ -n "$HAFW_PACKAGE_SHA256" ]; then
		echo "$HAFW_PACKAGE_SHA256  $pkg" | sha256sum -c - >>"$LOG" 2>&1 ||
			die "$HAFW_PACKAGE_URL does not have SHA-256 $HAFW_PACKAGE_SHA256 (variable package_sha256): not installed"
	fi
	# What was downloaded decides, not the URL's ending: a signed URL ends
	# in its query string.
	magic=$(head -c 7 "$pkg" | od -An -c | tr -d ' \n')
	case "$magic" in
	'!<arch>')
		[ -z "$ROOT" ] || die "a .deb cannot be installed under HAFW_BOOTSTRAP_ROOT; give the binary's URL instead"
		mv "$pkg" "$work/hafw.deb"
		say "installing the package"
		# First boot may race apt-daily or unattended-upgrades for the
		# lock, and the image's package lists may be stale.
		if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y "$work/hafw.deb" >>"$LOG" 2>&1; then
			say "apt-get install failed; updating the package lists and trying once more"
			apt-get -o DPkg::Lock::Timeout=300 update >>"$LOG" 2>&1 || true
			DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y "$work/hafw.deb" >>"$LOG" 2>&1 ||
				die "apt-get install of the package failed; see $LOG"
		fi
		;;
	*ELF* | '#!'*)
		say "installing the binary at /usr/bin/hafw"
		mkdir -p "$ROOT/usr/bin"
		atomic_write "$BIN" 0755 <"$pkg"
		;;
	*)
		die "$HAFW_PACKAGE_URL is neither a Debian package nor an ELF binary (an error page?): not installed"
		;;
	esac
	rm -rf "$work"
fi
if [ ! -x "$BIN" ]; then
	BIN=$(command -v hafw || true)
	[ -n "$BIN" ] || die "hafw is not installed: set package_url, or use an image that has hafw"
fi
version=$("$BIN" --version 2>>"$LOG") || die "$BIN --version failed: the binary does not run on this image"
say "$version at $BIN"

# ---- 2. the unit, when neither the package nor the image brought one
STEP=unit
if [ -e "$ROOT/lib/systemd/system/hafw.service" ] ||
	[ -e "$ROOT/usr/lib/systemd/system/hafw.service" ] ||
	[ -e "$ROOT/etc/systemd/system/hafw.service" ]; then
	say "hafw.service already installed"
else
	mkdir -p "$ROOT/etc/systemd/system"
	# The unit runs the binary found above, whatever path it names.
	unit_bin=$BIN
	if [ -n "$ROOT" ] && [ "$BIN" = "$ROOT/usr/bin/hafw" ]; then unit_bin=/usr/bin/hafw; fi
	hafw_unit | sed "s|^ExecStart=[^ ]*hafw |ExecStart=$unit_bin |" |
		atomic_write "$ROOT/etc/systemd/system/hafw.service" 0644
	say "wrote /etc/systemd/system/hafw.service"
fi

# ---- 3. configuration: /etc/hafw, the deployment file, the node's identity
STEP=config
mkdir -p "$ROOT/etc/hafw"
chown 0:0 "$ROOT/etc/hafw"
chmod 0700 "$ROOT/etc/hafw"
conf=$ROOT/etc/hafw/deployment.toml
new=$conf.new.$$
hafw_deployment >"$new"
if [ "$HAFW_DEPLOYMENT_TRIM" = 1 ]; then
	# A heredoc always ends in a newline; the file did not.
	truncate -s -1 "$new"
fi
if [ ! -e "$conf" ]; then
	atomic_write "$conf" 0600 <"$new"
	say "wrote /etc/hafw/deployment.toml"
elif cmp -s "$new" "$conf"; then
	say "/etc/hafw/deployment.toml already written"
else
	say "kept /etc/hafw/deployment.toml: it differs from this user data (config sync or an operator changed it); delete it and run this again to replace it"
fi
rm -f "$new"

# hafw.env: NODE= for the unit; any other line (HAFW_ARGS=...) is kept.
env_file=$ROOT/etc/hafw/hafw.env
{
	if [ -e "$env_file" ]; then grep -v '^NODE=' "$env_file" || true; fi
	printf 'NODE=%s\n' "$HAFW_NODE"
} >"$env_file.new.$$"
atomic_write "$env_file" 0600 <"$env_file.new.$$"
rm -f "$env_file.new.$$"
say "wrote /etc/hafw/hafw.env (NODE=$HAFW_NODE)"

# ---- 4. the HA key: root only, mode 0600, never readable half-written
STEP=key
key=$ROOT$HAFW_KEY_FILE
mkdir -p "$(dirname "$key")"
printf '%s' "$HAFW_KEY_B64" | base64 -d >"$key.new.$$" 2>>"$LOG" || die "the HA key is not base64"
len=$(wc -c <"$key.new.$$")
if [ "$len" -lt 32 ]; then
	rm -f "$key.new.$$"
	die "the HA key holds $len bytes, fewer than 32; give the pair a 32-byte key (hafw keygen)"
fi
if [ -e "$key" ] && ! cmp -s "$key.new.$$" "$key"; then
	# Rotated by hand since the first boot (hafw keygen on both nodes):
	# putting the old key back would split the pair.
	rm -f "$key.new.$$"
	say "kept $HAFW_KEY_FILE: it differs from this user data (rotated since the first boot); delete it and run this again to replace it"
else
	atomic_write "$key" 0600 <"$key.new.$$"
	rm -f "$key.new.$$"
	say "wrote $HAFW_KEY_FILE (mode 0600, root)"
fi

# ---- 5. the host name, so logs and prompts name the node
STEP=hostname
if [ -n "$ROOT" ]; then
	printf '%s\n' "$HAFW_NODE" | atomic_write "$ROOT/etc/hostname" 0644
elif command -v hostnamectl >/dev/null 2>&1; then
	hostnamectl set-hostname "$HAFW_NODE" >>"$LOG" 2>&1 || die "hostnamectl set-hostname $HAFW_NODE failed"
else
	hostname "$HAFW_NODE"
	printf '%s\n' "$HAFW_NODE" | atomic_write /etc/hostname 0644
fi
say "host name $HAFW_NODE"

# ---- 6. start
STEP=start
if [ "$NO_START" = 1 ]; then
	say "HAFW_BOOTSTRAP_NO_START=1 (test only): not starting hafw.service"
	exit 0
fi
systemctl daemon-reload >>"$LOG" 2>&1 || die "systemctl daemon-reload failed"
# --no-block: a passive reports READY only once it holds its peer's
# sessions, which may take as long as the peer takes to boot; first boot
# must not wait for that.
systemctl enable hafw.service >>"$LOG" 2>&1 || die "systemctl enable hafw.service failed"
systemctl start --no-block hafw.service >>"$LOG" 2>&1 || die "systemctl start hafw.service failed"
say "hafw.service started; follow it with: journalctl -u hafw -f"
