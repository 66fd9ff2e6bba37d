#!/usr/bin/env bash
# Installs slip (slipd + the slip CLI) as a service on a Debian/Ubuntu (or any systemd/glibc x86_64) machine.
#
#   curl -sSL https://raw.githubusercontent.com/mitchelljphayes/slip/main/install.sh | bash
#   curl -sSL .../install.sh | bash -s -- --from ./slip-0.1.0-x86_64-linux.tar.gz
#
#   install.sh [--from PATH|URL] [--public-domain HOST]   install, or upgrade in place (config, state, secrets kept)
#   install.sh --uninstall                                 remove the binaries and the unit; keep config and state
#   install.sh --uninstall --purge                         also remove /etc/slip, /var/lib/slip and the slip user
#   install.sh --host-only [--public-domain HOST]          only the user, engine access, directories and config
#                                                          (the Debian package's postinst runs this)
#
# --from takes a release tarball (scripts/release.sh makes one); its checksum, the file of the same name plus
# .sha256, must sit beside it and must match. Without --from the latest release is downloaded (SLIP_RELEASE_URL
# overrides where from). It needs root; it works when piped from curl and on machines where systemd does not run.
set -euo pipefail

readonly DEFAULT_URL=https://github.com/mitchelljphayes/slip/releases/latest/download/slip-x86_64-linux.tar.gz
readonly BIN_DIR=/usr/local/bin
readonly CONFIG_DIR=/etc/slip
readonly STATE_DIR=/var/lib/slip
readonly UNIT=/etc/systemd/system/slipd.service
readonly DOC_DIR=/usr/share/doc/slip
readonly PODMAN_DROPIN=/etc/systemd/system/podman.socket.d/50-slip.conf
readonly DOCKER_SOCKET=/var/run/docker.sock
readonly USER_NAME=slip

say() { printf 'install: %s\n' "$*"; }
warn() { printf 'install: warning: %s\n' "$*" >&2; }
die() {
    printf 'install: error: %s\n' "$1" >&2
    [[ $# -gt 1 ]] && printf 'hint: %s\n' "$2" >&2
    exit 1
}

usage() {
    cat <<'EOF'
install.sh [--from PATH|URL] [--public-domain HOST]   install, or upgrade in place (config, state, secrets kept)
install.sh --uninstall                                 remove the binaries and the unit; keep config and state
install.sh --uninstall --purge                         also remove /etc/slip, /var/lib/slip and the slip user
install.sh --host-only [--public-domain HOST]          only the user, engine access, directories and config
EOF
}

systemd_runs() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

random_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# --- fetching and checking the release -----------------------------------------------------------------------------

# Copies or downloads $1 to $2.
fetch() {
    local source=$1 dest=$2
    case "$source" in
        http://* | https://*)
            command -v curl >/dev/null || die "downloading $source needs curl" "apt-get install -y curl, or pass --from PATH"
            curl -fsSL --retry 3 -o "$dest" "$source" </dev/null || die "could not download $source"
            ;;
        *)
            [[ -f $source ]] || die "no such file: $source" "--from takes a release tarball (PATH or URL)"
            cp "$source" "$dest"
            ;;
    esac
}

# Downloads or copies the tarball and its .sha256, checks one against the other, unpacks into $2.
fetch_release() {
    local source=$1 work=$2
    fetch "$source" "$work/release.tar.gz"
    case "$source" in
        http://* | https://*) ;;
        *) [[ -f $source.sha256 ]] || die "no checksum file $source.sha256 beside the release; nothing was installed" \
            "scripts/release.sh writes one next to the tarball" ;;
    esac
    fetch "$source.sha256" "$work/release.sha256"
    local expected actual
    expected=$(awk 'NR == 1 { print $1 }' "$work/release.sha256")
    actual=$(sha256sum "$work/release.tar.gz" | awk '{ print $1 }')
    [[ $expected =~ ^[0-9a-f]{64}$ ]] || die "$source.sha256 does not hold a SHA-256 checksum"
    [[ $expected == "$actual" ]] || die "checksum mismatch for $source: expected $expected, got $actual" \
        "the download is damaged or not the release the .sha256 file names; nothing was installed"
    say "checksum verified ($actual)" >&2
    mkdir "$work/unpacked"
    tar -xzf "$work/release.tar.gz" -C "$work/unpacked" --no-same-owner
    local top
    top=$(find "$work/unpacked" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    for file in bin/slipd bin/slip slipd.service; do
        [[ -f $top/$file ]] || die "the release has no $file; is $source a slip release tarball?"
    done
    printf '%s\n' "$top"
}

# --- the slip user, engine access, directories ---------------------------------------------------------------------

ensure_user() {
    if ! getent group "$USER_NAME" >/dev/null; then
        groupadd --system "$USER_NAME"
        say "created group $USER_NAME"
    fi
    if ! getent passwd "$USER_NAME" >/dev/null; then
        useradd --system --gid "$USER_NAME" --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "slip deploy daemon" "$USER_NAME"
        say "created system user $USER_NAME"
    fi
}

# The slip user joins the group that owns the Docker socket (normally `docker`), or gets the rootful Podman socket.
grant_engine_access() {
    local group=""
    if [[ -S $DOCKER_SOCKET ]]; then
        local gid
        gid=$(stat -c %g "$DOCKER_SOCKET")
        group=$(getent group "$gid" | cut -d: -f1 || true)
        if [[ -z $group ]]; then
            # The socket's group has no name here (e.g. a container or chroot sharing the host's socket).
            getent group docker >/dev/null && die "$DOCKER_SOCKET belongs to gid $gid, not to the docker group" \
                "make the socket's group the docker group, then run install.sh again"
            groupadd --system --gid "$gid" docker
            group=docker
        fi
        [[ $group == root ]] && die "$DOCKER_SOCKET is owned by group root; slip will not join root's group" \
            "run dockerd with its default group 'docker' (groupadd --system docker; restart dockerd)"
    elif getent group docker >/dev/null; then
        group=docker
    fi
    if [[ -n $group ]]; then
        if id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx "$group"; then
            say "user $USER_NAME is in group $group (Docker engine access)"
        else
            usermod -a -G "$group" "$USER_NAME"
            say "added user $USER_NAME to group $group (Docker engine access)"
        fi
        return
    fi
    if command -v podman >/dev/null; then
        if systemd_runs; then
            mkdir -p "$(dirname "$PODMAN_DROPIN")"
            printf '# Written by slip'"'"'s install.sh: slipd (group slip) talks to rootful Podman.\n[Socket]\nSocketGroup=slip\nSocketMode=0660\n' >"$PODMAN_DROPIN"
            systemctl daemon-reload
            systemctl enable podman.socket >/dev/null 2>&1 || true
            systemctl restart podman.socket
            say "podman.socket enabled with group $USER_NAME ($PODMAN_DROPIN)"
        else
            warn "no systemd: run the Podman API yourself and give its socket to group $USER_NAME:"
            warn "  podman system service --time=0 unix:///run/podman/podman.sock & sleep 1; chgrp $USER_NAME /run/podman/podman.sock; chmod 0660 /run/podman/podman.sock"
        fi
        return
    fi
    warn "no container engine found (no $DOCKER_SOCKET, no docker group, no podman); slipd needs one"
    warn "install Docker (apt-get install -y docker.io) or Podman, then run install.sh again to grant access"
}

# mkdir + owner + mode for one directory; its contents are left alone.
ensure_dir() {
    local path=$1 owner=$2 mode=$3
    mkdir -p "$path"
    chown "$owner" "$path"
    chmod "$mode" "$path"
}

ensure_directories() {
    ensure_dir "$CONFIG_DIR" "root:$USER_NAME" 0750
    ensure_dir "$CONFIG_DIR/apps" "$USER_NAME:$USER_NAME" 0750
    ensure_dir "$STATE_DIR" "$USER_NAME:$USER_NAME" 0750
    ensure_dir "$STATE_DIR/secrets" "$USER_NAME:$USER_NAME" 0700
    ensure_dir "$STATE_DIR/volumes" "$USER_NAME:$USER_NAME" 0750
    ensure_dir "$STATE_DIR/preview-volumes" "$USER_NAME:$USER_NAME" 0750
    ensure_dir "$STATE_DIR/backups" "$USER_NAME:$USER_NAME" 0700
    ensure_dir "$STATE_DIR/trash" "$USER_NAME:$USER_NAME" 0700
    ensure_dir "$STATE_DIR/tmp" "$USER_NAME:$USER_NAME" 0700
}

# --- config --------------------------------------------------------------------------------------------------------

# slip.env: written once with fresh keys; an existing file keeps its content and only loses world access.
ensure_env_file() {
    local env=$CONFIG_DIR/slip.env
    if [[ -e $env ]]; then
        chown "root:$USER_NAME" "$env"
        chmod g-wx,o-rwx "$env"
        say "$env exists; kept as it is (its keys are unchanged)"
        return
    fi
    local secret token
    secret=$(random_hex)
    token=$(random_hex)
    (
        umask 077
        printf '# Written by slip'"'"'s install.sh. SLIP_SECRET signs CI webhooks; SLIP_ADMIN_TOKEN manages slipd.\n' >"$env.tmp"
        printf 'SLIP_SECRET=%s\nSLIP_ADMIN_TOKEN=%s\n' "$secret" "$token" >>"$env.tmp"
    )
    chown "root:$USER_NAME" "$env.tmp"
    chmod 0640 "$env.tmp"
    mv "$env.tmp" "$env"
    say "wrote $env with a fresh SLIP_SECRET and SLIP_ADMIN_TOKEN"
    printf '\n  SLIP_SECRET=%s\n\n' "$secret"
    say "this is the webhook key for CI (store it as a CI secret); it is shown only now"
    say "the admin token for the slip CLI is SLIP_ADMIN_TOKEN in $env (readable by root)"
}

ensure_config_file() {
    local toml=$CONFIG_DIR/slip.toml
    if [[ ! -e $toml ]]; then
        {
            printf '# slipd'"'"'s config (docs/configuration.md). Written by install.sh; yours to edit.\n'
            printf '[server]\nlisten = "127.0.0.1:7890"\n'
            [[ -n $public_domain ]] && printf 'public_domain = "%s"\n' "$public_domain"
            printf '\n[runtime]\nbackend = "auto"\n\n'
            # shellcheck disable=SC2016 # the placeholders are for slipd to interpolate, not for this shell
            printf '[auth]\nsecret = "${SLIP_SECRET}"\nadmin_token = "${SLIP_ADMIN_TOKEN}"\n\n'
            printf '[caddy]\nadmin_api = "http://localhost:2019"\n\n'
            printf '[storage]\npath = "%s"\n' "$STATE_DIR"
        } >"$toml.tmp"
        chown "root:$USER_NAME" "$toml.tmp"
        chmod 0640 "$toml.tmp"
        mv "$toml.tmp" "$toml"
        say "wrote $toml"
        return
    fi
    chown "root:$USER_NAME" "$toml"
    chmod g-wx,o-rwx "$toml"
    if [[ -n $public_domain ]]; then
        if grep -q '^[[:space:]]*public_domain[[:space:]]*=' "$toml"; then
            sed -i "s|^[[:space:]]*public_domain[[:space:]]*=.*|public_domain = \"$public_domain\"|" "$toml"
        elif grep -q '^\[server\]' "$toml"; then
            sed -i "/^\[server\]/a public_domain = \"$public_domain\"" "$toml"
        else
            printf '\n[server]\npublic_domain = "%s"\n' "$public_domain" >>"$toml"
        fi
        say "set server.public_domain = \"$public_domain\" in $toml"
    else
        say "$toml exists; kept as it is"
    fi
}

# --- the unit ------------------------------------------------------------------------------------------------------

install_unit() {
    local unpacked=$1
    mkdir -p "$(dirname "$UNIT")"
    install -m 0644 -o root -g root "$unpacked/slipd.service" "$UNIT.new"
    mv "$UNIT.new" "$UNIT"
    [[ -x /bin/kill ]] || warn "/bin/kill is missing (package procps): systemctl reload slipd needs it"
    if systemd_runs; then
        systemctl daemon-reload
        systemctl enable slipd >/dev/null
        if systemctl is-active --quiet slipd; then
            systemctl restart slipd
            say "slipd.service upgraded and restarted"
        elif systemctl start slipd; then
            say "slipd.service enabled and started"
        else
            warn "slipd.service did not start; see: journalctl -u slipd"
        fi
        return
    fi
    if command -v systemctl >/dev/null; then
        systemctl enable slipd >/dev/null 2>&1 && say "slipd.service enabled (systemd is not running here)"
    fi
    say "installed $UNIT, but systemd is not running on this machine, so nothing was started"
    say "start slipd by hand as the slip user:"
    printf '\n  setpriv --reuid=slip --regid=slip --init-groups %s/slipd --config %s\n\n' "$BIN_DIR" "$CONFIG_DIR"
    if pgrep -x slipd >/dev/null 2>&1; then
        warn "a slipd is running; restart it to run the new version"
    fi
}

caddy_hint() {
    if systemd_runs && systemctl is-active --quiet caddy; then
        say "Caddy runs as caddy.service, which forgets slip's routes on restart; switch to the --resume unit:"
        printf '\n  systemctl disable --now caddy; systemctl enable --now caddy-api\n\n'
    elif systemd_runs; then
        say "slip needs Caddy with its admin API and --resume (Debian: systemctl enable --now caddy-api)"
    else
        say "slip needs Caddy with its admin API and --resume: caddy run --resume"
    fi
}

# --- install and uninstall -----------------------------------------------------------------------------------------

# Everything but the files from the release: user, engine access, directories, slip.env and slip.toml.
prepare_host() {
    ensure_user
    grant_engine_access
    ensure_directories
    ensure_env_file
    ensure_config_file
}

do_install() {
    local work
    work=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    say "fetching $source"
    local unpacked
    unpacked=$(fetch_release "$source" "$work")
    local version
    version=$("$unpacked/bin/slipd" --version </dev/null 2>/dev/null | awk '{ print $2 }') ||
        die "the release's slipd does not run on this machine" "slip releases are for x86_64 Linux"

    prepare_host
    for bin in slipd slip; do
        install -m 0755 -o root -g root "$unpacked/bin/$bin" "$BIN_DIR/$bin.new"
        mv "$BIN_DIR/$bin.new" "$BIN_DIR/$bin"
    done
    say "installed slipd and slip $version in $BIN_DIR"
    mkdir -p "$DOC_DIR"
    for doc in README.md LICENSE; do
        [[ -f $unpacked/$doc ]] && install -m 0644 "$unpacked/$doc" "$DOC_DIR/$doc"
    done
    if "$BIN_DIR/slipd" --config "$CONFIG_DIR" --check </dev/null; then
        :
    else
        warn "fix the problems above in $CONFIG_DIR, then start (or restart) slipd"
    fi
    install_unit "$unpacked"
    caddy_hint
    say "done: slip $version"
}

do_uninstall() {
    if systemd_runs && [[ -f $UNIT ]]; then
        systemctl disable --now slipd >/dev/null 2>&1 || true
    elif command -v systemctl >/dev/null && [[ -f $UNIT ]]; then
        systemctl disable slipd >/dev/null 2>&1 || true
    fi
    rm -f "$UNIT" "$BIN_DIR/slipd" "$BIN_DIR/slip" "$PODMAN_DROPIN"
    rm -rf "$DOC_DIR"
    systemd_runs && systemctl daemon-reload
    say "removed slipd, slip and slipd.service"
    if [[ $purge -eq 0 ]]; then
        say "kept $CONFIG_DIR, $STATE_DIR and the $USER_NAME user (install.sh --uninstall --purge removes them)"
        return
    fi
    rm -rf "$CONFIG_DIR" "$STATE_DIR"
    if getent passwd "$USER_NAME" >/dev/null; then userdel "$USER_NAME"; fi
    if getent group "$USER_NAME" >/dev/null; then groupdel "$USER_NAME"; fi
    say "purged $CONFIG_DIR, $STATE_DIR and the $USER_NAME user and group"
    say "containers slip started are left running; list them with: docker ps --filter label=slip.app"
}

main() {
    source=${SLIP_RELEASE_URL:-$DEFAULT_URL}
    public_domain=""
    local uninstall=0 host_only=0
    purge=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --from) [[ $# -ge 2 ]] || die "--from needs a PATH or URL"; source=$2; shift ;;
            --public-domain) [[ $# -ge 2 ]] || die "--public-domain needs a HOST"; public_domain=$2; shift ;;
            --uninstall) uninstall=1 ;;
            --purge) purge=1 ;;
            --host-only) host_only=1 ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option '$1'; valid options are --from, --public-domain, --uninstall, --purge and --help" ;;
        esac
        shift
    done
    [[ $purge -eq 1 && $uninstall -eq 0 ]] && die "--purge only goes with --uninstall" "install.sh --uninstall --purge"
    if [[ -n $public_domain && ! $public_domain =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]]; then
        die "--public-domain '$public_domain' is not a hostname" "e.g. --public-domain deploy.example.com"
    fi
    [[ $EUID -eq 0 ]] || die "install.sh must run as root (it creates a user and writes /etc and /usr/local)" \
        "curl -sSL .../install.sh | sudo bash"
    [[ $(uname -m) == x86_64 ]] || die "slip releases are built for x86_64 Linux; this machine is $(uname -m)"
    if [[ $host_only -eq 1 ]]; then
        [[ $uninstall -eq 0 ]] || die "--host-only does not go with --uninstall"
        prepare_host
    elif [[ $uninstall -eq 1 ]]; then
        do_uninstall
    else
        do_install
    fi
}

# Everything runs from here, so a download cut short never runs half a script.
main "$@"
