#!/usr/bin/env bash
# Builds the .deb and .rpm from this tree and proves what an operator relies on:
#   - file lists, modes, conffiles and maintainer scripts of both packages;
#   - `systemd-analyze verify` on the installed units; the catalog proxy's unit shipped but
#     not enabled, its sandbox (`systemd-analyze security`), its packaged config readable
#     and serving /healthz as an unprivileged user, its enable state removed by purge;
#   - the .deb installed with dpkg, `plesk-reseller-agent check` run from /usr/bin, a
#     version-bumped .deb installed over an edited agent.ini (edit kept), then remove (config
#     and state kept) and purge (both gone), checking the files at each step;
#   - which systemctl calls each step makes (install starts, upgrade try-restarts, only a
#     real removal stops), with a logging stand-in for systemctl;
#   - the .rpm installed, upgraded and erased in a scratch root (rpm --root), and its
#     scriptlets run directly for $1 = 1/2 (%post) and 0/1 (%preun, %postun);
#   - portability: the newest glibc symbol of every packaged binary (amd64 and arm64) is at
#     most GLIBC_2.17, and neither the deb's Depends nor the rpm's Requires ask for more;
#     the amd64 .deb installed into a Debian 11 root (glibc 2.31, made with debootstrap)
#     and the packaged binary run there: --version, check, and one sync against a spool that
#     sets buyUrl and runs a job through the stand-in plesk; the arm64 binary does the same
#     under qemu-aarch64 with Debian 11's arm64 C library. (Debian 10 is no longer on the
#     Debian mirror this machine reaches, so glibc 2.28 is proven by the symbol floor only.)
#
# Needs root on a Debian-family machine; systemd need not be PID 1. Installs rpm, systemd,
# binutils, debootstrap and qemu-user with apt-get when they are missing; the Debian 11
# roots live in the scratch directory and are removed at the end (about 250 MB; the
# debootstrap steps take about 1.5 minutes). Leaves the package purged.
# Ends with a line "N passed, 0 failed".
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
unit=plesk-reseller-agent.service
proxy=plesk-catalog-proxy.service
pkg=plesk-reseller-agent

passed=0
failed=0
pass() {
    passed=$((passed + 1))
    echo "  ok   $*"
}
fail() {
    failed=$((failed + 1))
    echo "  FAIL $*" >&2
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
step() { echo "== $*"; }
has() { grep -qE -- "$1" <<<"$2"; }    # has REGEX TEXT
lacks() { ! grep -qE -- "$1" <<<"$2"; } # lacks REGEX TEXT
all_lines() { ! grep -vqE -- "$1" <<<"$2"; } # every line of TEXT matches REGEX
die() {
    echo "test-packages.sh: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs and purges the .deb)"
command -v dpkg >/dev/null || die "needs dpkg (a Debian-family machine)"

need_apt=()
command -v rpm >/dev/null || need_apt+=(rpm)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v man >/dev/null || need_apt+=(man-db)
command -v objdump >/dev/null || need_apt+=(binutils)
command -v cpio >/dev/null || need_apt+=(cpio)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
if [ ${#need_apt[@]} -gt 0 ]; then
    step "installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/pkgtest.XXXXXX)
fake_systemd_dir=
proxy_pid=
cleanup() {
    # Only what this script made: the stand-in systemd marker, the proxy it started, its
    # scratch dir.
    if [ -n "$proxy_pid" ]; then kill -TERM "$proxy_pid" 2>/dev/null || true; fi
    if [ -n "$fake_systemd_dir" ]; then rmdir "$fake_systemd_dir" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if dpkg -s "$pkg" >/dev/null 2>&1; then
    step "purging a $pkg left from an earlier run"
    dpkg -P "$pkg" >/dev/null
fi

# ---------------------------------------------------------------- build
step "building release 1 and release 2 from this tree"
start=$(date +%s)
rm -rf target/packages
packaging/build-packages.sh --release 1
mkdir -p "$work/r1" "$work/r2"
cp target/packages/*.deb target/packages/*.rpm "$work/r1/"
# The upgrade tests below are about amd64; release 2 needs no arm64 packages.
packaging/build-packages.sh --release 2 --arch amd64
cp target/packages/*.deb target/packages/*.rpm "$work/r2/"
echo "   build took $(($(date +%s) - start)) s"
deb1=$(echo "$work"/r1/plesk-reseller-agent_*_amd64.deb)
deb2=$(echo "$work"/r2/plesk-reseller-agent_*_amd64.deb)
rpm1=$(echo "$work"/r1/plesk-reseller-agent-[0-9]*.x86_64.rpm)
rpm2=$(echo "$work"/r2/plesk-reseller-agent-[0-9]*.x86_64.rpm)
deb_arm=$(echo "$work"/r1/plesk-reseller-agent_*_arm64.deb)
rpm_arm=$(echo "$work"/r1/plesk-reseller-agent-[0-9]*.aarch64.rpm)
# The central's packages (checked in their own section below).
cdeb=$(echo "$work"/r1/plesk-reseller-central_*_amd64.deb)
crpm=$(echo "$work"/r1/plesk-reseller-central-[0-9]*.x86_64.rpm)
cdeb_arm=$(echo "$work"/r1/plesk-reseller-central_*_arm64.deb)
crpm_arm=$(echo "$work"/r1/plesk-reseller-central-[0-9]*.aarch64.rpm)
for f in "$deb1" "$deb2" "$rpm1" "$rpm2" "$deb_arm" "$rpm_arm" "$cdeb" "$crpm" "$cdeb_arm" "$crpm_arm"; do
    [ -f "$f" ] || die "the build made no $f"
done
version=$(dpkg-deb -f "$deb1" Version)
version=${version%-1}

# ---------------------------------------------------------------- deb, static
step "deb contents: $(basename "$deb1")"
listing=$(dpkg-deb -c "$deb1")
has_entry() { # has_entry MODE PATH: a file of that mode, owned by root
    grep -qE "^$1 (root/root|0/0) +[0-9]+ [0-9-]+ [0-9:]+ \./$2\$" <<<"$listing"
}
for e in \
    "-rwxr-xr-x usr/bin/plesk-reseller-agent" \
    "-rw-r--r-- lib/systemd/system/plesk-reseller-agent.service" \
    "-rw-r----- etc/plesk-reseller-agent/agent.ini" \
    "-rw-r--r-- lib/systemd/system/plesk-catalog-proxy.service" \
    "-rw-r--r-- etc/plesk-catalog-proxy/catalog-proxy.ini" \
    "-rw-r--r-- usr/share/man/man1/plesk-reseller-agent.1.gz" \
    "-rw-r--r-- usr/share/bash-completion/completions/plesk-reseller-agent" \
    "-rw-r--r-- usr/share/zsh/vendor-completions/_plesk-reseller-agent" \
    "-rw-r--r-- usr/share/fish/vendor_completions.d/plesk-reseller-agent.fish"; do
    check "deb has ${e#* } mode ${e%% *}" has_entry "${e%% *}" "${e#* }"
done
files_in_deb=$(grep -vc '^d' <<<"$listing")
# The nine above plus the copyright file cargo-deb adds.
check "deb has no unexpected files ($files_in_deb)" [ "$files_in_deb" -eq 10 ]

info=$(dpkg-deb -I "$deb1")
check "deb version is $version-1" grep -q "^ Version: $version-1\$" <<<"$info"
check "deb depends on libc6" grep -qE '^ Depends: .*libc6' <<<"$info"
check "deb section admin" grep -q '^ Section: admin$' <<<"$info"
check "deb 2 version is $version-2" [ "$(dpkg-deb -f "$deb2" Version)" = "$version-2" ]

mkdir "$work/ctrl"
dpkg-deb --ctrl-tarfile "$deb1" | tar -x -C "$work/ctrl"
check "conffiles lists exactly agent.ini and catalog-proxy.ini" \
    [ "$(sort "$work/ctrl/conffiles" | tr '\n' ' ')" = "/etc/plesk-catalog-proxy/catalog-proxy.ini /etc/plesk-reseller-agent/agent.ini " ]
for s in postinst prerm postrm; do
    check "deb $s is packaging/deb/$s, executable" \
        sh -c "cmp -s '$work/ctrl/$s' 'packaging/deb/$s' && [ -x '$work/ctrl/$s' ]"
done
check "deb has no preinst" [ ! -e "$work/ctrl/preinst" ]

mkdir "$work/data"
dpkg-deb -x "$deb1" "$work/data"
man_text=$(zcat "$work/data/usr/share/man/man1/plesk-reseller-agent.1.gz")
for c in run sync status check poll\\\\-now; do
    check "man page documents '$c'" grep -q "^\\\\fB$c\\\\fR\$" <<<"$man_text"
done
check "man page names the config file" grep -q 'agent.ini' <<<"$man_text"
for f in usr/share/bash-completion/completions/plesk-reseller-agent \
    usr/share/zsh/vendor-completions/_plesk-reseller-agent \
    usr/share/fish/vendor_completions.d/plesk-reseller-agent.fish; do
    check "completion $(basename "$f") knows poll-now and --config" \
        sh -c "grep -q poll-now '$work/data/$f' && grep -q -- config '$work/data/$f'"
done
check "bash completion parses" bash -n "$work/data/usr/share/bash-completion/completions/plesk-reseller-agent"
check "packaged agent.ini is packaging/agent.ini" cmp -s "$work/data/etc/plesk-reseller-agent/agent.ini" packaging/agent.ini
check "packaged unit is systemd/$unit" cmp -s "$work/data/lib/systemd/system/$unit" "systemd/$unit"
check "packaged catalog-proxy.ini is packaging/catalog-proxy.ini" \
    cmp -s "$work/data/etc/plesk-catalog-proxy/catalog-proxy.ini" packaging/catalog-proxy.ini
check "packaged unit is systemd/$proxy" cmp -s "$work/data/lib/systemd/system/$proxy" "systemd/$proxy"

# ---------------------------------------------------------------- rpm, static
step "rpm contents: $(basename "$rpm1")"
rpm_files=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpm1" 2>/dev/null)
rpm_has() { grep -qxF -- "$1 root:root $2" <<<"$rpm_files"; }
for e in \
    "-rwxr-xr-x /usr/bin/plesk-reseller-agent" \
    "-rw-r--r-- /usr/lib/systemd/system/plesk-reseller-agent.service" \
    "-rw-r----- /etc/plesk-reseller-agent/agent.ini" \
    "-rw-r--r-- /usr/lib/systemd/system/plesk-catalog-proxy.service" \
    "-rw-r--r-- /etc/plesk-catalog-proxy/catalog-proxy.ini" \
    "-rw-r--r-- /usr/share/man/man1/plesk-reseller-agent.1.gz" \
    "-rw-r--r-- /usr/share/bash-completion/completions/plesk-reseller-agent" \
    "-rw-r--r-- /usr/share/zsh/site-functions/_plesk-reseller-agent" \
    "-rw-r--r-- /usr/share/fish/vendor_completions.d/plesk-reseller-agent.fish"; do
    check "rpm has ${e#* } mode ${e%% *}" rpm_has "${e%% *}" "${e#* }"
done
check "rpm has no unexpected files" [ "$(wc -l <<<"$rpm_files")" -eq 9 ]
for f in /etc/plesk-reseller-agent/agent.ini /etc/plesk-catalog-proxy/catalog-proxy.ini; do
    check "rpm: $(basename $f) is %config(noreplace)" grep -qx "cn $f" \
        <<<"$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm1" 2>/dev/null)"
done
check "rpm: man page is %doc" grep -qx 'd /usr/share/man/man1/plesk-reseller-agent.1.gz' \
    <<<"$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm1" 2>/dev/null)"
check "rpm version-release is $version-1" [ "$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$rpm1" 2>/dev/null)" = "$version-1" ]
check "rpm 2 version-release is $version-2" [ "$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$rpm2" 2>/dev/null)" = "$version-2" ]
rpm_script() { rpm -qp --qf "%{$1}" "$rpm1" 2>/dev/null; }
check "rpm %post is packaging/rpm/post_install.sh" [ "$(rpm_script POSTIN)" = "$(cat packaging/rpm/post_install.sh)" ]
check "rpm %preun is packaging/rpm/pre_uninstall.sh" [ "$(rpm_script PREUN)" = "$(cat packaging/rpm/pre_uninstall.sh)" ]
check "rpm %postun is packaging/rpm/post_uninstall.sh" [ "$(rpm_script POSTUN)" = "$(cat packaging/rpm/post_uninstall.sh)" ]
check "rpm --scripts shows the three scriptlets" \
    sh -c "[ \$(rpm -qp --scripts '$rpm1' 2>/dev/null | grep -cE '^(postinstall|preuninstall|postuninstall) scriptlet') -eq 3 ]"

# ---------------------------------------------------------------- portability: glibc floor
floor=2.17
step "glibc floor: every packaged binary needs at most GLIBC_$floor"
# ver_le A B: version A <= version B (dotted numbers).
ver_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | sed -n 1p)" = "$1" ]; }
newest_glibc() { # newest_glibc BINARY: the highest GLIBC_x.y among its dynamic symbols
    objdump -T "$1" | grep -o 'GLIBC_[0-9.]*[0-9]' | sed 's/GLIBC_//' | sort -uV | tail -1
}
extract_bin() { # extract_bin PACKAGE DIR: unpacks the package's files into DIR
    mkdir -p "$2"
    case "$1" in
    *.deb) dpkg-deb -x "$1" "$2" ;;
    # Debian 12's rpm2cpio (rpm 4.18.0) exits 1 after writing a whole archive; cpio and
    # the checks on the unpacked binary below tell whether it was.
    *.rpm)
        rpm2cpio "$1" >"$2.cpio" || true
        (cd "$2" && cpio -idm --quiet <"$2.cpio")
        ;;
    esac
}
for p in "$deb1" "$rpm1" "$deb_arm" "$rpm_arm" "$cdeb" "$crpm" "$cdeb_arm" "$crpm_arm"; do
    name=$(basename "$p")
    d="$work/floor/$name"
    extract_bin "$p" "$d"
    case "$name" in
    plesk-reseller-central*) b="$d/usr/bin/plesk-reseller-central" ;;
    *) b="$d/usr/bin/plesk-reseller-agent" ;;
    esac
    case "$name" in
    *amd64* | *x86_64*) machine='X86-64' ;;
    *) machine='AArch64' ;;
    esac
    check "$name: binary is for $machine" has "Machine: +(Advanced Micro Devices )?$machine" "$(readelf -h "$b")"
    newest=$(newest_glibc "$b")
    echo "   $name: newest glibc symbol GLIBC_$newest"
    check "$name: newest glibc symbol ($newest) <= $floor" ver_le "${newest:-99}" "$floor"
    needed=$(readelf -d "$b" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
    check "$name: links only glibc's own libraries ($(echo $needed))" \
        all_lines '^(libc\.so\.6|libpthread\.so\.0|libdl\.so\.2|libm\.so\.6|librt\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$' "$needed"
done
for p in "$deb1" "$deb_arm" "$cdeb" "$cdeb_arm"; do
    dep=$(dpkg-deb -f "$p" Depends)
    want=$(sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p' <<<"$dep")
    check "$(basename "$p"): Depends '$dep' asks for libc6 <= $floor" \
        sh -c "[ -n '$want' ] && [ \"\$(printf '%s\n%s\n' '$want' '$floor' | sort -V | sed -n 1p)\" = '$want' ]"
done
for p in "$rpm1" "$rpm_arm" "$crpm" "$crpm_arm"; do
    reqs=$(rpm -qpR "$p" 2>/dev/null)
    newest=$(grep -o 'GLIBC_[0-9.]*[0-9]' <<<"$reqs" | sed 's/GLIBC_//' | sort -uV | tail -1)
    check "$(basename "$p"): Requires name libc.so.6 (found by elfdeps)" has '^libc\.so\.6\(\)\(64bit\)$' "$reqs"
    check "$(basename "$p"): Requires ask for at most GLIBC_$floor (GLIBC_$newest)" ver_le "${newest:-99}" "$floor"
    check "$(basename "$p"): payload readable by EL7's rpm (not zstd)" lacks 'PayloadIsZstd' "$reqs"
done

# ---------------------------------------------------------------- portability: Debian 11
# A minimal Debian 11 root from the mirror apt uses here. The amd64 one is complete (the
# .deb is installed into it with its own dpkg); the arm64 one is only unpacked (first stage)
# for its C library, which qemu-aarch64 -L hands the arm64 binary.
mirror=$({ grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; } |
    sed -n '1s/ //gp')
mirror=${mirror:-http://deb.debian.org/debian}
old=$work/bullseye
step "debootstrap Debian 11 (bullseye, amd64, minbase) from $mirror"
t0=$(date +%s)
debootstrap --variant=minbase bullseye "$old" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; die "debootstrap of bullseye from $mirror failed"; }
echo "   debootstrap took $(($(date +%s) - t0)) s"
old_glibc=$(chroot "$old" ldd --version | sed -n 1p)
check "the root's C library is glibc 2.31 ($old_glibc)" has ' 2\.31$' "$old_glibc"

# A sandbox in the root: the stand-in plesk, a panel.ini, a spool with the store's
# instructions (a buyUrl and one job). sandbox DIR writes it under DIR, for paths DIR.
sandbox() { # sandbox HOST_DIR ROOT_DIR: lays it out at HOST_DIR, with paths as seen at ROOT_DIR
    mkdir -p "$1/plesk" "$1/conf" "$1/spool"
    cp tests/fixtures/plesk-standin "$1/plesk/plesk"
    cp examples/sandbox/panel.ini "$1/conf/panel.ini"
    cat >"$1/agent.ini" <<INI
[central]
url = file://$2/spool
host_id = old-glibc-1
[panel]
ini_path = $2/conf/panel.ini
[plesk]
command = $2/plesk/plesk
timeout = 30
[agent]
state_dir = $2/state
socket = $2/run/agent.sock
INI
    cat >"$1/spool/instructions.json" <<'JSON'
{ "panel_ini": { "buy_url": "https://shop.example.com/plesk?ref=debian11" },
  "jobs": [ { "id": "ord-11", "type": "install_key", "activation_code": "A00000-K6QK03-KSG046-H6BK67-1GE201" } ] }
JSON
}
sync_worked() { # sync_worked HOST_DIR LABEL: what one sync pass must have left
    check "$2: sync set buyUrl in panel.ini" \
        grep -qxF 'buyUrl = "https://shop.example.com/plesk?ref=debian11"' "$1/conf/panel.ini"
    check "$2: the job ran through the stand-in plesk" \
        grep -qx 'bin license -i A00000-K6QK03-KSG046-H6BK67-1GE201' "$1/plesk/calls.log"
    check "$2: its result in the spool says succeeded" \
        grep -q '"status": *"succeeded"' "$1/spool/results/ord-11.json"
}
in_root() { # in_root COMMAND...: runs it chrooted into $old, with /proc, in a private mount ns
    unshare --mount --propagation private -- sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$old" "$@"
}

step "Debian 11 root: dpkg -i the amd64 .deb, then run the packaged binary"
cp "$deb1" "$old/tmp/agent.deb"
out=$(in_root dpkg -i /tmp/agent.deb 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/   /'
check "Debian 11: dpkg -i succeeds (Depends met by libc6 2.31)" [ "$rc" -eq 0 ]
out=$(in_root /usr/bin/plesk-reseller-agent --version 2>&1) || true
check "Debian 11: --version prints $version ($out)" [ "$out" = "plesk-reseller-agent $version" ]
sandbox "$old/srv/sb" /srv/sb
out=$(in_root /usr/bin/plesk-reseller-agent --config /srv/sb/agent.ini check 2>&1) && rc=0 || rc=$?
echo "$out" | sed 's/^/   /'
check "Debian 11: check passes against the sandbox" [ "$rc" -eq 0 ]
check "Debian 11: check reports the spool answering" has '^ok   central: file:///srv/sb/spool answers$' "$out"
out=$(in_root /usr/bin/plesk-reseller-agent --config /srv/sb/agent.ini sync 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/   /'
check "Debian 11: sync exits 0" [ "$rc" -eq 0 ]
sync_worked "$old/srv/sb" "Debian 11"

step "Debian 11 arm64 C library: the arm64 binary under qemu-aarch64"
arm=$work/bullseye-arm64
t0=$(date +%s)
debootstrap --foreign --arch=arm64 --variant=minbase bullseye "$arm" "$mirror" >"$work/debootstrap-arm64.log" 2>&1 ||
    { tail -20 "$work/debootstrap-arm64.log" >&2; die "debootstrap --foreign --arch=arm64 of bullseye failed"; }
echo "   debootstrap (first stage) took $(($(date +%s) - t0)) s"
# The host has no arm64 libc of its own, so everything the binary loads comes from $arm.
arm_glibc=$(qemu-aarch64 -L "$arm" "$arm/lib/aarch64-linux-gnu/libc.so.6" 2>&1 | sed -n 1p) || true
check "the arm64 C library is glibc 2.31 ($arm_glibc)" has 'release version 2\.31' "$arm_glibc"
armbin=$work/floor/$(basename "$deb_arm")/usr/bin/plesk-reseller-agent
qa() { qemu-aarch64 -L "$arm" "$armbin" "$@"; }
out=$(qa --version 2>&1) || true
check "arm64: --version prints $version ($out)" [ "$out" = "plesk-reseller-agent $version" ]
# The sandbox stays outside $arm: qemu looks paths up in $arm first. The stand-in plesk is
# a script, run by the host's own bash.
sandbox "$work/sb-arm64" "$work/sb-arm64"
out=$(qa --config "$work/sb-arm64/agent.ini" check 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/   /'
check "arm64: check passes against the sandbox" [ "$rc" -eq 0 ]
out=$(qa --config "$work/sb-arm64/agent.ini" sync 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/   /'
check "arm64: sync exits 0" [ "$rc" -eq 0 ]
sync_worked "$work/sb-arm64" "arm64"
step "Debian 11 root: the central's portable binary"
# The central's portable binary on glibc 2.31: migrate a fresh SQLite database, then check it.
cp "$work/floor/$(basename "$cdeb")/usr/bin/plesk-reseller-central" "$old/tmp/central"
mkdir -p "$old/srv/central"
cat >"$old/srv/central/central.ini" <<'INI'
[server]
listen = 127.0.0.1:0
admin_socket = /srv/central/admin.sock
[database]
url = sqlite:///srv/central/central.db
[sell]
seo-toolkit = ADD-SEO-TOOLKIT-1M
INI
out=$(in_root /tmp/central --version 2>&1) || true
check "Debian 11: the central's --version prints $version ($out)" [ "$out" = "plesk-reseller-central $version" ]
out=$(in_root /tmp/central --config /srv/central/central.ini migrate 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/   /'
check "Debian 11: the central migrates a SQLite database" [ "$rc" -eq 0 ]
out=$(in_root /tmp/central --config /srv/central/central.ini check 2>&1) && rc=0 || rc=$?
echo "$out" | sed 's/^/   /'
check "Debian 11: the central's check passes" [ "$rc" -eq 0 ]
out=$(in_root /tmp/central --config /srv/central/central.ini sell allow-file 2>&1) || true
check "Debian 11: sell allow-file prints the [sell] list" [ "$out" = "seo-toolkit" ]
rm -rf "$old" "$arm"

# ---------------------------------------------------------------- systemctl stand-in
# Maintainer scripts talk to systemd only when /run/systemd/system exists. To see what they
# would do on a real server, that marker is created (only if absent, removed on exit) and a
# systemctl that logs its arguments is put first in PATH. Offline calls (`--root=`, which
# deb-systemd-helper uses to enable) go on to the real systemctl. deb-systemd-invoke is
# stood in for too: the real one asks policy-rc.d, which in containers often refuses all.
real_systemctl=$(command -v systemctl)
stub="$work/stub"
mkdir -p "$stub"
syslog="$work/systemctl.log"
cat >"$stub/systemctl" <<EOF
#!/bin/sh
echo "\$*" >>"$syslog"
case "\$*" in *--root=*) exec "$real_systemctl" "\$@" ;; esac
exit 0
EOF
cat >"$stub/deb-systemd-invoke" <<EOF
#!/bin/sh
echo "invoke: \$*" >>"$syslog"
exit 0
EOF
chmod 755 "$stub/systemctl" "$stub/deb-systemd-invoke"
with_systemd() { # runs "$@" as if systemd were PID 1, logging systemctl calls
    : >"$syslog"
    if [ ! -d /run/systemd/system ]; then
        mkdir -p /run/systemd/system
        fake_systemd_dir=/run/systemd/system
    fi
    local rc=0
    PATH="$stub:$PATH" "$@" || rc=$?
    if [ -n "$fake_systemd_dir" ]; then
        rmdir "$fake_systemd_dir"
        fake_systemd_dir=
    fi
    return $rc
}
called() { grep -qE "(^| )$1 ${2:-$unit}\$" "$syslog"; } # called ACTION [UNIT]
reloaded() { grep -qE '(^| )daemon-reload$' "$syslog"; }
real_systemd=no
[ -d /run/systemd/system ] && real_systemd=yes
if [ "$real_systemd" = yes ]; then
    echo "   (systemd is running here: the stand-in systemctl still intercepts the scripts' calls)"
fi

# ---------------------------------------------------------------- deb, install
state=/var/lib/plesk-reseller-agent
conf=/etc/plesk-reseller-agent
wants=/etc/systemd/system/multi-user.target.wants/$unit
pconf=/etc/plesk-catalog-proxy
proxy_links() { find /etc/systemd/system -name "$proxy"; } # enable or mask symlinks

step "dpkg -i $(basename "$deb1")"
with_systemd dpkg -i "$deb1" </dev/null >/dev/null
check "installed: $version-1" [ "$(dpkg-query -W -f '${Version}' "$pkg")" = "$version-1" ]
check "install reloads systemd" reloaded
check "install starts the service" called start
check "install stops nothing" sh -c "! grep -q stop '$syslog'"
check "install enabled the unit (wants symlink)" [ -L "$wants" ]
check "install leaves the proxy alone (no start, no enable)" sh -c "! grep -q '$proxy' '$syslog'"
check "proxy not enabled (no symlink in /etc/systemd/system)" [ -z "$(proxy_links)" ]
check "proxy unit at /lib/systemd/system" [ -f "/lib/systemd/system/$proxy" ]
check "catalog-proxy.ini 0644 root:root" [ "$(stat -c '%a %U:%G' $pconf/catalog-proxy.ini)" = "644 root:root" ]
check "proxy config dir 0755" [ "$(stat -c %a $pconf)" = 755 ]
check "binary at /usr/bin, 0755" [ "$(stat -c %a /usr/bin/plesk-reseller-agent)" = 755 ]
check "agent.ini 0640 root:root" [ "$(stat -c '%a %U:%G' $conf/agent.ini)" = "640 root:root" ]
check "config dir 0750" [ "$(stat -c %a $conf)" = 750 ]
check "unit at /lib/systemd/system" [ -f "/lib/systemd/system/$unit" ]
check "--version prints $version" [ "$(/usr/bin/plesk-reseller-agent --version)" = "plesk-reseller-agent $version" ]
check "man finds the page" sh -c "man -w plesk-reseller-agent | grep -q /usr/share/man/man1/plesk-reseller-agent.1.gz"

step "systemd-analyze verify"
verify_out=$(systemd-analyze verify "/lib/systemd/system/$unit" 2>&1) && verify_rc=0 || verify_rc=$?
if [ -n "$verify_out" ]; then echo "$verify_out" | sed 's/^/   /'; fi
check "systemd-analyze verify passes" [ "$verify_rc" -eq 0 ]
check "systemd-analyze verify has no warning" [ -z "$verify_out" ]
verify_out=$(systemd-analyze verify "/lib/systemd/system/$proxy" 2>&1) && verify_rc=0 || verify_rc=$?
if [ -n "$verify_out" ]; then echo "$verify_out" | sed 's/^/   /'; fi
check "systemd-analyze verify passes on $proxy" [ "$verify_rc" -eq 0 ]
check "systemd-analyze verify has no warning on $proxy" [ -z "$verify_out" ]
# Settings the daemon and the license work rely on (verify says nothing about them).
for kv in Type=notify NotifyAccess=main "ExecStart=/usr/bin/plesk-reseller-agent run" \
    "ExecReload=/bin/kill -HUP \$MAINPID" Restart=on-failure KillMode=mixed WatchdogSec=60s \
    TimeoutStopSec=330s StateDirectory=plesk-reseller-agent StateDirectoryMode=0700 \
    RuntimeDirectory=plesk-reseller-agent ConfigurationDirectory=plesk-reseller-agent \
    ConfigurationDirectoryMode=0750 \
    WantedBy=multi-user.target; do
    check "unit sets $kv" grep -qxF "$kv" "/lib/systemd/system/$unit"
done
for absent in ProtectSystem NoNewPrivileges RestrictSUIDSGID PrivateTmp ProtectHome UMask User SystemCallFilter; do
    check "unit leaves $absent unset (the license child needs it so)" \
        sh -c "! grep -qE '^$absent=' '/lib/systemd/system/$unit'"
done

# The proxy's sandbox and how it is started (verify says nothing about them either).
for kv in Type=notify NotifyAccess=main \
    "ExecStart=/usr/bin/plesk-reseller-agent --config $pconf/catalog-proxy.ini catalog-proxy" \
    Restart=on-failure DynamicUser=yes ConfigurationDirectory=plesk-catalog-proxy \
    ConfigurationDirectoryMode=0755 ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
    PrivateDevices=yes NoNewPrivileges=yes CapabilityBoundingSet= AmbientCapabilities= \
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" RestrictNamespaces=yes \
    MemoryDenyWriteExecute=yes SystemCallFilter=@system-service SystemCallArchitectures=native \
    WantedBy=multi-user.target; do
    check "$proxy sets $kv" grep -qxF "$kv" "/lib/systemd/system/$proxy"
done
check "$proxy has no User= (DynamicUser allocates one)" sh -c "! grep -qE '^User=' '/lib/systemd/system/$proxy'"
security=$(systemd-analyze security --offline=true --no-pager "/lib/systemd/system/$proxy" 2>&1 | tail -1)
echo "   $security"
check "systemd-analyze security rates $proxy OK or better" has 'exposure level .*: [0-9.]+ (OK|SAFE)' "$security"

step "systemd 239 (EL8): every unit option is known to 239 or documented as ignored there"
# Options of the three units that systemd 239 knows (all from 235 or earlier).
known_239=" After AmbientCapabilities CapabilityBoundingSet ConfigurationDirectory
    ConfigurationDirectoryMode Description Documentation DynamicUser ExecReload ExecStart
    KillMode LockPersonality MemoryDenyWriteExecute NoNewPrivileges NotifyAccess PrivateDevices
    PrivateMounts PrivateTmp ProtectControlGroups ProtectHome ProtectKernelModules
    ProtectKernelTunables ProtectSystem Restart RestartSec RestrictAddressFamilies
    RestrictNamespaces RestrictRealtime RuntimeDirectory RuntimeDirectoryMode StartLimitBurst
    StartLimitIntervalSec StateDirectory StateDirectoryMode SystemCallArchitectures
    SystemCallErrorNumber SystemCallFilter TimeoutStopSec Type UMask WantedBy Wants WatchdogSec
    User Group LimitNOFILE RemoveIPC "
# Newer ones, which 239 ignores with a warning; each unit's comment must name those it sets.
newer_239=" ProtectHostname ProtectKernelLogs ProtectClock ProtectProc ProcSubset RestrictSUIDSGID "
for u in "$unit" "$proxy" plesk-reseller-central.service; do
    for opt in $(grep -oE '^[A-Za-z]+=' "systemd/$u" | tr -d = | sort -u); do
        case "$known_239" in *[[:space:]]$opt[[:space:]]*) continue ;; esac
        case "$newer_239" in
        *" $opt "*)
            check "$u: $opt= (newer than 239) is named in its systemd 239 comment" \
                grep -qE "^#.*\\b$opt=" "systemd/$u"
            ;;
        *) fail "$u: $opt= is in neither list of systemd 239 options here: look it up and add it" ;;
        esac
    done
done

step "catalog proxy: packaged config, as an unprivileged user, as the unit runs it"
check "nobody can read catalog-proxy.ini" sh -c \
    "setpriv --reuid=65534 --regid=65534 --clear-groups cat $pconf/catalog-proxy.ini >/dev/null"
# The packaged file with only the port changed (0: any free one; 8080 may be taken here).
mkdir -m 0755 "$work/proxy"
chmod 0711 "$work"
sed 's|^listen =$|listen = 127.0.0.1:0|' $pconf/catalog-proxy.ini >"$work/proxy/catalog-proxy.ini"
chmod 0644 "$work/proxy/catalog-proxy.ini"
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
    /usr/bin/plesk-reseller-agent --config "$work/proxy/catalog-proxy.ini" catalog-proxy \
    2>"$work/proxy/log" &
proxy_pid=$!
proxy_addr=
for _ in $(seq 100); do # up to 10 s for the "serving" log line
    proxy_addr=$(grep -o 'listen=127\.0\.0\.1:[0-9]*' "$work/proxy/log" | sed -n 1p | cut -d= -f2) || true
    [ -n "$proxy_addr" ] && break
    kill -0 $proxy_pid 2>/dev/null || break
    sleep 0.1
done
health=$(curl -s --max-time 10 "http://$proxy_addr/healthz" 2>&1) || true
kill -TERM $proxy_pid 2>/dev/null || true
proxy_rc=0
wait $proxy_pid || proxy_rc=$?
proxy_pid=
[ -n "$health" ] || sed 's/^/   /' "$work/proxy/log"
check "proxy starts from the packaged config as nobody" [ -n "$proxy_addr" ]
check "proxy /healthz answers status ok" has '"status":"ok"' "$health"
check "proxy logs no warning for the packaged config" lacks 'WARN' "$(cat "$work/proxy/log")"
check "proxy exits 0 on SIGTERM" [ "$proxy_rc" -eq 0 ]

step "plesk-reseller-agent check (installed, default config, no Plesk here)"
out=$(/usr/bin/plesk-reseller-agent check 2>&1) && rc=0 || rc=$?
echo "$out" | sed 's/^/   /'
check "check exits 1 (no Plesk on this machine)" [ "$rc" -eq 1 ]
check "check: the packaged agent.ini parses" has "^ok   config: $conf/agent.ini parses\$" "$out"
check "check: the packaged agent.ini has no unknown key" lacks '^warn' "$out"
check "check: reports the missing Plesk command" has '^FAIL plesk command: /usr/sbin/plesk ' "$out"
check "check: every line is a verdict" all_lines '^(ok  |FAIL|warn) ' "$out"

# An operator's edits: a store (loopback, so nothing leaves the machine), a token, state.
step "operator edits agent.ini, adds a token and the daemon's state"
sed -i 's|^url =$|url = https://127.0.0.1:9/plesk-agent|; s|^host_id =$|host_id = web-042|' $conf/agent.ini
(umask 077 && echo "s3cr3t-token" >$conf/token)
mkdir -p -m 0700 $state/backup
echo "original" >$state/backup/panel.ini.orig
edited=$(sha256sum $conf/agent.ini)
# ...and enables the proxy with systemctl itself (offline: no systemd needed), with an allow list.
sed -i 's|^allow =$|allow = wp-toolkit|' $pconf/catalog-proxy.ini
pedited=$(sha256sum $pconf/catalog-proxy.ini)
"$real_systemctl" enable "$proxy" >/dev/null 2>&1
check "the admin's systemctl enable made the proxy's wants symlink" \
    [ -L "/etc/systemd/system/multi-user.target.wants/$proxy" ]
out=$(/usr/bin/plesk-reseller-agent check 2>&1) || true
check "check: sees the private token" has "^ok   token file: $conf/token is private" "$out"
check "check: names the unreachable store" has '^FAIL central: ' "$out"

# ---------------------------------------------------------------- deb, upgrade
step "dpkg -i $(basename "$deb2") (upgrade over the edited agent.ini)"
with_systemd dpkg -i "$deb2" </dev/null >/dev/null
check "installed: $version-2" [ "$(dpkg-query -W -f '${Version}' "$pkg")" = "$version-2" ]
check "edited agent.ini kept" [ "$(sha256sum $conf/agent.ini)" = "$edited" ]
check "no .dpkg-new/.dpkg-dist beside it" sh -c "! ls $conf | grep -q dpkg"
check "agent.ini still 0640" [ "$(stat -c %a $conf/agent.ini)" = 640 ]
check "config dir still 0750" [ "$(stat -c %a $conf)" = 750 ]
check "token kept, 0600" [ "$(stat -c %a $conf/token)" = 600 ]
check "state kept" [ -f $state/backup/panel.ini.orig ]
check "upgrade try-restarts the service" called try-restart
check "upgrade does not stop it" sh -c "! grep -qE '(^| )stop ' '$syslog'"
check "upgrade does not (re)start a stopped one" sh -c "! grep -qE '(^| )(start|restart) ' '$syslog'"
check "still enabled" [ -L "$wants" ]
check "upgrade try-restarts the proxy (a no-op unless running)" called try-restart "$proxy"
check "upgrade neither starts nor stops the proxy" sh -c "! grep -qE '(^| )(start|restart|stop) $proxy' '$syslog'"
check "proxy still enabled as the admin left it" [ -L "/etc/systemd/system/multi-user.target.wants/$proxy" ]
check "edited catalog-proxy.ini kept" [ "$(sha256sum $pconf/catalog-proxy.ini)" = "$pedited" ]
check "catalog-proxy.ini still 0644" [ "$(stat -c %a $pconf/catalog-proxy.ini)" = 644 ]

step "dpkg -i $(basename "$deb2") again without systemd as PID 1"
dpkg -i "$deb2" </dev/null >/dev/null
check "reinstall without systemd succeeds" [ "$(dpkg-query -W -f '${Status}' "$pkg")" = "install ok installed" ]

# ---------------------------------------------------------------- deb, remove
step "dpkg -r"
with_systemd dpkg -r "$pkg" </dev/null >/dev/null
check "removal stops the service" called stop
check "removal stops the proxy" called stop "$proxy"
check "removal masks the proxy too" [ "$(readlink "/etc/systemd/system/$proxy")" = /dev/null ]
check "proxy unit gone" [ ! -e "/lib/systemd/system/$proxy" ]
check "edited catalog-proxy.ini kept" [ "$(sha256sum $pconf/catalog-proxy.ini)" = "$pedited" ]
check "removal masks the unit (deb-systemd-helper keeps the enable state for a reinstall)" \
    [ "$(readlink "/etc/systemd/system/$unit")" = /dev/null ]
check "binary gone" [ ! -e /usr/bin/plesk-reseller-agent ]
check "unit gone" [ ! -e "/lib/systemd/system/$unit" ]
check "man page gone" [ ! -e /usr/share/man/man1/plesk-reseller-agent.1.gz ]
check "edited agent.ini kept" [ "$(sha256sum $conf/agent.ini)" = "$edited" ]
check "token kept" [ -f $conf/token ]
check "state kept" [ -f $state/backup/panel.ini.orig ]
check "dpkg: config-files state" [ "$(dpkg-query -W -f '${Status}' "$pkg")" = "deinstall ok config-files" ]

# ---------------------------------------------------------------- deb, purge
step "dpkg -P"
with_systemd dpkg -P "$pkg" </dev/null >/dev/null
check "config dir gone" [ ! -e $conf ]
check "proxy config dir gone" [ ! -e $pconf ]
check "no enable or mask symlink of the proxy left (the admin's enable included)" [ -z "$(proxy_links)" ]
check "deb-systemd-helper forgot the proxy" \
    sh -c "! find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked -name '$proxy*' 2>/dev/null | grep -q ."
check "state dir gone" [ ! -e $state ]
check "no enable or mask symlink left" \
    sh -c "! find /etc/systemd/system -name '$unit' | grep -q ."
check "dpkg forgot the package" sh -c "! dpkg -s $pkg >/dev/null 2>&1"

step "install and purge once more, without systemd as PID 1"
dpkg -i "$deb1" </dev/null >/dev/null
check "install without systemd succeeds and enables" [ -L "$wants" ]
check "install without systemd does not enable the proxy" [ -z "$(proxy_links)" ]
dpkg -r "$pkg" </dev/null >/dev/null
dpkg -P "$pkg" </dev/null >/dev/null
check "purge without systemd leaves nothing" \
    sh -c "[ ! -e $conf ] && [ ! -e $pconf ] && ! find /etc/systemd/system -name '$unit' -o -name '$proxy' | grep -q . && ! dpkg -s $pkg >/dev/null 2>&1"

# ---------------------------------------------------------------- rpm, in a scratch root
step "rpm -i/-U/-e --root (scripts run separately below)"
root="$work/rpmroot"
mkdir -p "$root"
rpm --root "$root" --initdb
rpm_q() { rpm --root "$root" "$@" 2>/dev/null; }
rpm --root "$root" -i --nodeps --noscripts "$rpm1" 2>/dev/null
check "rpm installed $version-1" [ "$(rpm_q -q --qf '%{VERSION}-%{RELEASE}' $pkg)" = "$version-1" ]
check "rpm: binary 0755 and runs" \
    sh -c "[ \$(stat -c %a '$root/usr/bin/plesk-reseller-agent') = 755 ] && '$root/usr/bin/plesk-reseller-agent' --version | grep -q '$version'"
check "rpm: agent.ini 0640" [ "$(stat -c %a "$root$conf/agent.ini")" = 640 ]
check "rpm: unit in /usr/lib/systemd/system" [ -f "$root/usr/lib/systemd/system/$unit" ]
check "rpm: proxy unit in /usr/lib/systemd/system" [ -f "$root/usr/lib/systemd/system/$proxy" ]
check "rpm: catalog-proxy.ini 0644" [ "$(stat -c %a "$root$pconf/catalog-proxy.ini")" = 644 ]
echo "buy_url = https://store.example.com/buy" >>"$root$conf/agent.ini"
edited=$(sha256sum <"$root$conf/agent.ini")
sed -i 's|^allow =$|allow = wp-toolkit|' "$root$pconf/catalog-proxy.ini"
pedited=$(sha256sum <"$root$pconf/catalog-proxy.ini")
rpm --root "$root" -U --nodeps --noscripts "$rpm2" 2>/dev/null
check "rpm upgraded to $version-2" [ "$(rpm_q -q --qf '%{VERSION}-%{RELEASE}' $pkg)" = "$version-2" ]
check "rpm upgrade kept the edited agent.ini" [ "$(sha256sum <"$root$conf/agent.ini")" = "$edited" ]
check "rpm upgrade left no .rpmnew" [ ! -e "$root$conf/agent.ini.rpmnew" ]
check "rpm upgrade kept the edited catalog-proxy.ini" [ "$(sha256sum <"$root$pconf/catalog-proxy.ini")" = "$pedited" ]
rpm --root "$root" -e --nodeps --noscripts "$pkg" 2>/dev/null
check "rpm erase removed the binary and unit" \
    sh -c "[ ! -e '$root/usr/bin/plesk-reseller-agent' ] && [ ! -e '$root/usr/lib/systemd/system/$unit' ] && [ ! -e '$root/usr/lib/systemd/system/$proxy' ]"
check "rpm erase kept the edit as agent.ini.rpmsave" [ "$(sha256sum <"$root$conf/agent.ini.rpmsave")" = "$edited" ]
check "rpm erase kept the edit as catalog-proxy.ini.rpmsave" \
    [ "$(sha256sum <"$root$pconf/catalog-proxy.ini.rpmsave")" = "$pedited" ]

step "rpm scriptlets run directly"
postin=$(rpm_script POSTIN)
preun=$(rpm_script PREUN)
postun=$(rpm_script POSTUN)
run_let() { sh -c "$1" sh "$2"; }
with_systemd run_let "$postin" 1
check "%post 1 (install): enable, daemon-reload, start" \
    sh -c "grep -qx 'enable $unit' '$syslog' && grep -qx daemon-reload '$syslog' && grep -qx 'start $unit' '$syslog'"
check "%post 1 (install): leaves the proxy alone" sh -c "! grep -q '$proxy' '$syslog'"
with_systemd run_let "$postin" 2
check "%post 2 (upgrade): daemon-reload and try-restart of both only" \
    [ "$(tr '\n' ' ' <"$syslog")" = "daemon-reload try-restart $unit try-restart $proxy " ]
with_systemd run_let "$preun" 1
check "%preun 1 (upgrade): nothing" [ ! -s "$syslog" ]
with_systemd run_let "$preun" 0
check "%preun 0 (erase): disable and stop both" \
    [ "$(tr '\n' ' ' <"$syslog")" = "--no-reload disable $unit $proxy stop $unit $proxy " ]
with_systemd run_let "$postun" 1
check "%postun 1 (upgrade): nothing" [ ! -s "$syslog" ]
with_systemd run_let "$postun" 0
check "%postun 0 (erase): daemon-reload" [ "$(tr '\n' ' ' <"$syslog")" = "daemon-reload " ]
# Without systemd as PID 1 the scriptlets must still succeed; %post only enables.
: >"$syslog"
PATH="$stub:$PATH" run_let "$postin" 1
check "%post 1 without systemd: only enable" [ "$(tr '\n' ' ' <"$syslog")" = "enable $unit " ]
scriptlets_quiet() { run_let "$preun" 0 && run_let "$postun" 0 && run_let "$postin" 2; }
check "scriptlets exit 0 without systemd" scriptlets_quiet

# ---------------------------------------------------------------- the central's packages
step "central: $(basename "$cdeb") and $(basename "$crpm") contents"
clisting=$(dpkg-deb -c "$cdeb")
check "central deb: /usr/bin/plesk-reseller-central 0755" has '^-rwxr-xr-x (root/root|0/0) .* \./usr/bin/plesk-reseller-central$' "$clisting"
check "central deb: the unit" has '\./lib/systemd/system/plesk-reseller-central\.service$' "$clisting"
check "central deb: central.ini 0640" has '^-rw-r----- (root/root|0/0) .* \./etc/plesk-reseller-central/central\.ini$' "$clisting"
check "central deb: central.ini is a conffile" has '^/etc/plesk-reseller-central/central\.ini$' "$(dpkg-deb -I "$cdeb" conffiles 2>/dev/null)"
check "central deb: not part of the agent's package" lacks 'plesk-reseller-central' "$(dpkg-deb -c "$deb1")"
crpm_files=$(rpm -qlp "$crpm" 2>/dev/null)
check "central rpm: the binary" has '^/usr/bin/plesk-reseller-central$' "$crpm_files"
check "central rpm: the unit" has '^/usr/lib/systemd/system/plesk-reseller-central\.service$' "$crpm_files"
check "central rpm: central.ini" has '^/etc/plesk-reseller-central/central\.ini$' "$crpm_files"

step "central: dpkg -i, remove, purge on this machine"
cuser=plesk-reseller-central
cconf=/etc/plesk-reseller-central
out=$(dpkg -i "$cdeb" 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/   /'
check "central: dpkg -i succeeds" [ "$rc" -eq 0 ]
check "central: the system user $cuser exists, without a login shell" \
    sh -c "getent passwd $cuser | grep -q ':/usr/sbin/nologin\$'"
check "central: $cconf is 0750 root:$cuser" [ "$(stat -c '%a %U:%G' "$cconf")" = "750 root:$cuser" ]
check "central: central.ini is 0640 root:$cuser" [ "$(stat -c '%a %U:%G' "$cconf/central.ini")" = "640 root:$cuser" ]
verify_out=$(systemd-analyze verify /lib/systemd/system/plesk-reseller-central.service 2>&1) && verify_rc=0 || verify_rc=$?
if [ -n "$verify_out" ]; then echo "$verify_out" | sed 's/^/   /'; fi
check "central: systemd-analyze verify passes" [ "$verify_rc" -eq 0 ]
check "central: systemd-analyze verify has no warning" [ -z "$verify_out" ]
check "central: the installed binary runs" [ "$(plesk-reseller-central --version)" = "plesk-reseller-central $version" ]
check "central: the service is not enabled by the install" [ ! -e /etc/systemd/system/multi-user.target.wants/plesk-reseller-central.service ]
out=$(plesk-reseller-central hosts list 2>&1) && rc=0 || rc=$?
check "central: with no server running, hosts list exits 3 ($out)" [ "$rc" -eq 3 ]
dpkg -r plesk-reseller-central >/dev/null 2>&1
check "central: dpkg -r removes the binary, keeps central.ini" sh -c "[ ! -e /usr/bin/plesk-reseller-central ] && [ -e $cconf/central.ini ]"
dpkg -P plesk-reseller-central >/dev/null 2>&1
check "central: dpkg -P removes $cconf" [ ! -e "$cconf" ]

# ---------------------------------------------------------------- end
check "nothing of $pkg left installed on this machine" \
    sh -c "! dpkg -s $pkg >/dev/null 2>&1 && [ ! -e /usr/bin/plesk-reseller-agent ] && [ ! -e $conf ] && [ ! -e $pconf ]"
echo "   whole run took $(($(date +%s) - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
