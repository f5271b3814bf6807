/**
 * HTTP transfers the far side runs itself: a GET of a presigned URL into a file (`--upload s3`)
 * and a PUT of a file to a presigned URL (`backups push`), on whatever userland it has. The
 * tool is picked once per run by `probeHttpToolScript`, first of:
 *
 *   curl; a GNU wget; python3 (urllib); perl alone for an http:// URL (`perl`), perl with
 *   `openssl s_client` for an https:// URL (`perl-openssl`).
 *
 * The stock Chroma image has perl and openssl but no curl, wget or python3; a python app image
 * has python3. The URL is a secret: it reaches the tool on its stdin only (a curl config line, a
 * wget URL list, one line for python3 and perl), never in an argument, an environment variable
 * or any output. The programs given to python3 and perl are constant code of this module.
 *
 * Every tool fails (non-zero exit, one line on stderr) on a non-2xx status, a body shorter than
 * its Content-Length or its chunked framing, a connect or TLS error (certificate checked against
 * the remote's CA store, host name included), and no progress for 60 s. The caller still checks
 * size and sha256 of what arrived.
 */
import { remoteScript, type RemoteScript } from './shell.ts';

export const HTTP_TOOLS = ['curl', 'wget', 'python3', 'perl', 'perl-openssl'] as const;
export type HttpTool = (typeof HTTP_TOOLS)[number];
export type UrlScheme = 'http' | 'https';

/** The scheme of an endpoint URL (no endpoint: AWS S3, https). */
export function schemeOf(endpoint: string | undefined): UrlScheme {
  return endpoint && new URL(endpoint).protocol === 'http:' ? 'http' : 'https';
}

/** What the remote found besides the chosen tool, for the refusal's fix. */
export interface HttpToolProbe {
  tool: HttpTool | undefined;
  hasPerl: boolean;
}

/**
 * Which tool this remote uses for `direction` over `scheme`: prints `tool=NAME` (or `tool=none`)
 * and `perl=yes|no`. A wget counts only when its --help lists the option used (GNU wget:
 * `--input-file` to read the URL from stdin, `--body-file` to PUT); python3 when urllib (and ssl,
 * for https) import; perl when its Socket module loads (perl-base has it).
 */
export function probeHttpToolScript(direction: 'get' | 'put', scheme: UrlScheme): RemoteScript {
  return remoteScript('choose the HTTP client on the remote', `
    scheme=$1; wget_option=$2
    if command -v perl >/dev/null 2>&1 && perl -e "use Socket; exit 0" >/dev/null 2>&1; then perl=yes; else perl=no; fi
    echo "perl=$perl"
    if [ "$scheme" = https ]; then modules="ssl, urllib.request"; else modules="urllib.request"; fi
    if command -v curl >/dev/null 2>&1; then echo "tool=curl"
    elif command -v wget >/dev/null 2>&1 && wget --help 2>&1 | grep -q -- "$wget_option"; then echo "tool=wget"
    elif command -v python3 >/dev/null 2>&1 && python3 -I -c "import $modules" >/dev/null 2>&1; then echo "tool=python3"
    elif [ "$perl" = yes ] && [ "$scheme" = http ]; then echo "tool=perl"
    elif [ "$perl" = yes ] && command -v openssl >/dev/null 2>&1; then echo "tool=perl-openssl"
    else echo "tool=none"; fi
  `, [scheme, direction === 'get' ? '--input-file' : '--body-file']);
}

export function parseHttpToolProbe(stdout: string): HttpToolProbe {
  const tool = /^tool=(\S+)$/m.exec(stdout)?.[1];
  return {
    tool: (HTTP_TOOLS as readonly string[]).includes(tool ?? '') ? (tool as HttpTool) : undefined,
    hasPerl: /^perl=yes$/m.test(stdout),
  };
}

/** The one line for a remote without any tool of the chain: what is missing and what to install. */
export function noHttpToolMessage(label: string, scheme: UrlScheme, forWhat: string, hasPerl: boolean): string {
  const chain = scheme === 'https' ? 'curl, a GNU wget, python3, or perl with openssl' : 'curl, a GNU wget, python3 or perl';
  const fix = scheme === 'https' && hasPerl ? 'install openssl (perl is there to drive it) or curl' : 'install curl (or python3, or perl and openssl)';
  return `${label} has no HTTP client for ${forWhat} over ${scheme}: none of ${chain}; ${fix} on the remote host`;
}

/** What the tool reads on stdin: a curl config line (`-K -`), else the URL on one line. */
export function urlStdin(tool: HttpTool, url: string): string {
  if (/[\r\n]/.test(url)) throw new Error('a URL with a line break');
  if (tool === 'curl') return `url = "${url.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"\n`;
  return `${url}\n`;
}

/**
 * python3 (`-I`: no script dir or cwd on sys.path, no PYTHON* variables): `get FILE` or `put FILE`,
 * the URL on stdin. urllib checks the TLS certificate and host name; redirects are failures.
 * No single quote anywhere: it is pasted into a single-quoted sh word.
 */
const PYTHON = String.raw`
import os, socket, ssl, sys, http.client, urllib.error, urllib.request
mode, path = sys.argv[1], sys.argv[2]
def quit(code, msg):
    sys.stderr.write("chroma-ferry: " + msg + "\n")
    if mode == "get":
        try: os.unlink(path)
        except OSError: pass
    sys.exit(code)
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
url = sys.stdin.readline().rstrip("\r\n")
scheme, _, rest = url.partition(":")
if scheme not in ("http", "https") or not rest.startswith("//"):
    quit(2, "the URL on stdin is not an absolute http(s) URL")
where = url.split("/")[2]
opener = urllib.request.build_opener(NoRedirect)
try:
    if mode == "get":
        req = urllib.request.Request(url, headers={"Accept-Encoding": "identity", "User-Agent": "chroma-ferry"})
        with opener.open(req, timeout=60) as r, open(path, "wb") as f:
            want = r.headers.get("Content-Length")
            got = 0
            while True:
                b = r.read(65536)
                if not b:
                    break
                f.write(b)
                got += len(b)
        if want is not None and want.isdigit() and got != int(want):
            quit(18, "short body from %s: %d of %s bytes" % (where, got, want))
    else:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            req = urllib.request.Request(url, data=f, method="PUT", headers={
                "Content-Length": str(size), "Content-Type": "application/octet-stream", "User-Agent": "chroma-ferry"})
            with opener.open(req, timeout=60) as r:
                r.read()
except urllib.error.HTTPError as e:
    body = e.read(65536).decode("latin-1")
    code = body.split("<Code>")[1].split("</Code>")[0] if "<Code>" in body else ""
    quit(22, "HTTP %d%s from %s" % (e.code, " " + code if code.isalpha() else "", where))
except http.client.IncompleteRead as e:
    quit(18, "short body from %s: the connection closed after %d bytes" % (where, len(e.partial)))
except urllib.error.URLError as e:
    r = e.reason
    if isinstance(r, ssl.SSLError):
        quit(35, "TLS connection to %s failed: %s" % (where, getattr(r, "reason", None) or type(r).__name__))
    if isinstance(r, socket.timeout):
        quit(28, "no progress for 60 s from %s: timed out" % where)
    quit(7, "cannot connect to %s: %s" % (where, getattr(r, "strerror", None) or type(r).__name__))
except ssl.SSLError as e:
    quit(35, "TLS connection to %s failed: %s" % (where, e.reason or type(e).__name__))
except (socket.timeout, TimeoutError):
    quit(28, "no progress for 60 s from %s: timed out" % where)
except (http.client.HTTPException, ConnectionError) as e:
    quit(56, "the connection to %s failed: %s" % (where, type(e).__name__))
except OSError as e:
    quit(23, "%s: %s" % (path, e.strerror or type(e).__name__))
`;

/**
 * perl (only perl-base modules: Socket): `get FILE` or `put FILE`, the URL on stdin. An http://
 * URL goes over a plain socket; an https:// one through `openssl s_client -quiet` (a child whose
 * stdin and stdout are pipes; -verify_return_error and -verify_hostname/-verify_ip, so a bad
 * certificate or host name ends the handshake), the connect address and server name being its
 * only arguments. perl writes the HTTP/1.1 request (Host as signed, Content-Length for a PUT,
 * Connection: close), checks the status line (2xx; 1xx skipped; anything else fails with the
 * S3 error code), and reads the body by Content-Length, chunked framing, or to the end. Exit
 * codes follow curl's: 7 connect, 18 short body, 22 HTTP status, 23 write, 28 timeout, 35 TLS.
 * No single quote anywhere: it is pasted into a single-quoted sh word.
 */
const PERL = String.raw`
use strict; use warnings; use Socket;
my ($mode, $file) = @ARGV;
my $T = 60; my $pid = 0; my ($in, $out, $err);
$SIG{PIPE} = "IGNORE";
sub quit { my ($code, $msg) = @_; print STDERR "chroma-ferry: $msg\n"; kill("TERM", $pid) if $pid; unlink($file) if $mode eq "get"; exit $code }
$SIG{ALRM} = sub { quit(28, "no progress for $T s: timed out") };
my $url = <STDIN>;
defined $url or quit(2, "no URL on stdin");
$url =~ s/[\r\n]+\z//;
$url =~ m{\A(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?(/[^\s#]*)\z} or quit(2, "the URL on stdin is not an absolute http(s) URL");
my ($scheme, $host, $port, $target) = ($1, $2, $3, $4);
my $authority = defined $port ? "$host:$port" : $host;
$port = $scheme eq "https" ? 443 : 80 unless defined $port;
my $bare = $host; $bare =~ s/\A\[(.*)\]\z/$1/;
if ($scheme eq "https") {
  my $ip = $bare =~ /\A[0-9.]+\z/ || $bare =~ /:/;
  pipe(my $cr, my $pw) && pipe(my $pr, my $cw) && pipe(my $er, my $ew) or quit(1, "pipe: $!");
  $pid = fork();
  defined $pid or quit(1, "fork: $!");
  if (!$pid) {
    open(STDIN, "<&", $cr) && open(STDOUT, ">&", $cw) && open(STDERR, ">&", $ew) or exit 126;
    close($_) for ($pr, $pw, $er);
    exec("openssl", "s_client", "-quiet", "-verify_return_error", "-connect", "$host:$port",
      ($ip ? ("-noservername", "-verify_ip", $bare) : ("-servername", $bare, "-verify_hostname", $bare))) or exit 127;
  }
  close($_) for ($cr, $cw, $ew);
  ($in, $out, $err) = ($pr, $pw, $er);
} else {
  my ($gerr, @ai) = Socket::getaddrinfo($bare, $port, { socktype => SOCK_STREAM });
  $gerr and quit(6, "cannot resolve $bare: $gerr");
  my $sock; my $why = "no address";
  for my $a (@ai) {
    socket($sock, $a->{family}, $a->{socktype}, $a->{protocol}) or do { $why = "$!"; next };
    alarm($T); my $ok = connect($sock, $a->{addr}); alarm(0);
    last if $ok;
    $why = "$!"; close($sock); undef $sock;
  }
  $sock or quit(7, "cannot connect to $authority: $why");
  ($in, $out) = ($sock, $sock);
}
binmode($in); binmode($out);
my $buf = ""; my $eof = 0;
sub fill { return 0 if $eof; alarm($T); my $n = sysread($in, $buf, 65536, length($buf)); alarm(0); if (!defined $n) { return 1 if $!{EINTR}; $eof = 1; return 0 } if (!$n) { $eof = 1; return 0 } return 1 }
sub line { my $i; while (($i = index($buf, "\n")) < 0) { fill() or return undef } my $l = substr($buf, 0, $i + 1, ""); $l =~ s/\r?\n\z//; return $l }
sub body { my ($n, $sink) = @_; while ($n > 0) { length($buf) or fill() or return $n; my $k = length($buf) < $n ? length($buf) : $n; $sink->(substr($buf, 0, $k, "")); $n -= $k } return 0 }
sub send_all { my $d = shift; while (length $d) { alarm($T); my $n = syswrite($out, $d); alarm(0); if (!defined $n) { next if $!{EINTR}; return 0 } substr($d, 0, $n, "") } return 1 }
sub tls_why {
  return "" unless $pid;
  close($out); kill("TERM", $pid); waitpid($pid, 0); $pid = 0;
  my $e = ""; my $last = "";
  1 while sysread($err, $e, 65536, length($e));
  for (split /\n/, $e) { $last = $_ if /error|errno|refused|unable|fail/i }
  $last =~ s/[^ -~]//g;
  return " over TLS" . ($last eq "" ? "" : ": openssl: " . substr($last, 0, 200));
}
my $size = 0; my $src;
if ($mode eq "put") { open($src, "<", $file) or quit(22, "cannot read $file: $!"); binmode($src); $size = -s $src }
my $sent = send_all(($mode eq "put" ? "PUT" : "GET") . " $target HTTP/1.1\r\nHost: $authority\r\nUser-Agent: chroma-ferry\r\nAccept-Encoding: identity\r\n"
  . ($mode eq "put" ? "Content-Length: $size\r\n" : "") . "Connection: close\r\n\r\n");
if ($sent && $src) { my $blk; while (1) { my $n = sysread($src, $blk, 65536); defined $n or quit(22, "reading $file: $!"); last unless $n; send_all($blk) or do { $sent = 0; last } } }
my ($status, %h);
while (1) {
  my $sl = line();
  defined $sl or quit($pid ? 35 : 52, ($sent ? "no HTTP response from $authority" : "the connection to $authority failed while sending") . tls_why());
  $sl =~ m{\AHTTP/1\.[01] ([0-9]{3})} or quit(8, "not an HTTP/1.x response from $authority");
  $status = $1; %h = ();
  while (1) { my $l = line(); defined $l or quit(8, "the response headers from $authority end early"); last if $l eq ""; $h{lc $1} = $2 if $l =~ /\A([A-Za-z0-9-]+):[ \t]*(.*?)[ \t]*\z/ }
  last unless $status =~ /\A1/;
}
if ($status !~ /\A2/) { 1 while !$eof && length($buf) < 65536 && fill(); my $c = $buf =~ m{<Code>([A-Za-z]+)</Code>} ? " $1" : ""; quit(22, "HTTP $status$c from $authority") }
$sent or quit(55, "the upload to $authority was cut off (HTTP $status)");
my $fh;
if ($mode eq "get") { open($fh, ">", $file) or quit(23, "cannot write $file: $!"); binmode($fh) }
my $got = 0;
my $sink = sub { $got += length($_[0]); if ($fh) { print {$fh} $_[0] or quit(23, "writing $file: $!") } };
if (($h{"transfer-encoding"} // "") =~ /chunked/i) {
  while (1) {
    my $s = line(); defined $s or quit(18, "the body from $authority ended before its last chunk ($got bytes)");
    $s =~ /\A([0-9A-Fa-f]{1,15})/ or quit(8, "a bad chunk size from $authority");
    my $n = hex($1); last unless $n;
    body($n, $sink) and quit(18, "the body from $authority ended inside a chunk ($got bytes)");
    my $crlf = line(); defined $crlf && $crlf eq "" or quit(18, "the body from $authority ended inside a chunk ($got bytes)");
  }
} elsif (defined $h{"content-length"}) {
  my $len = $h{"content-length"};
  $len =~ /\A[0-9]{1,15}\z/ or quit(8, "a bad Content-Length from $authority");
  body($len, $sink) and quit(18, "short body from $authority: $got of $len bytes");
} else {
  $sink->(substr($buf, 0, length($buf), "")) while length($buf) || fill();
}
if ($fh) { close($fh) or quit(23, "writing $file: $!") }
if ($pid) { close($out); kill("TERM", $pid); waitpid($pid, 0) }
exit 0;
`;

for (const [name, code] of [['PYTHON', PYTHON], ['PERL', PERL]] as const) {
  if (code.includes("'")) throw new Error(`http-transfer.ts: the ${name} program must not hold a single quote`);
}

/**
 * The sh code that runs `tool` for one transfer; "$1" is the file, the URL comes on stdin. The
 * programs are flush left (python3 needs it), so this code is not indented.
 */
function transferCode(direction: 'get' | 'put', curl: string, wget: string): string {
  return [
    'case "$2" in',
    `  curl) exec ${curl} ;;`,
    `  wget) exec ${wget} ;;`,
    `  python3) exec python3 -I -c '${PYTHON}' ${direction} "$1" ;;`,
    `  perl|perl-openssl) exec perl -e '${PERL}' ${direction} "$1" ;;`,
    '  *) echo "unknown HTTP tool $2" >&2; exit 2 ;;',
    'esac',
  ].join('\n');
}

/** Download the URL on stdin into `partial` (replaced) with `tool`. */
export function fetchUrlScript(partial: string, tool: HttpTool): RemoteScript {
  return remoteScript('fetch a chunk from the bucket', `rm -f "$1"\n${transferCode('get',
    'curl -fsS --connect-timeout 20 --retry 2 -K - -o "$1"',
    'wget -q -T 60 -t 3 -i - -O "$1"')}`, [partial, tool]);
}

/** HTTP PUT of the remote file `file` to the URL on stdin with `tool`. */
export function putFileToUrlScript(file: string, tool: HttpTool): RemoteScript {
  return remoteScript('upload a file to the bucket', `[ -f "$1" ] || { echo "$1 not found" >&2; exit 22; }\n${transferCode('put',
    'curl -fsS --connect-timeout 20 --retry 2 -K - -T "$1" -o /dev/null',
    'wget -q -T 60 -t 3 --method=PUT --body-file="$1" -i - -O /dev/null')}`, [file, tool]);
}
