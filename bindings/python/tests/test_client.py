"""The client against the real sandbox (a process started by the fixture),
and against small servers of the test's own for what the sandbox does not do
(redirect elsewhere, never answer)."""

import http.server
import json
import socket
import threading
import time

import pytest

from api_entreprise import (
    ApiEntreprise,
    ApiError,
    CallTimeoutError,
    Codec,
    InvalidInputError,
    MemoryStore,
    Quota,
    QuotaExceededError,
    RefusedByHostError,
    TokenRefusedError,
    TransportError,
)
from conftest import SANDBOX_TOKEN

TRACE = {"context": "aides publiques", "recipient": "13002526500013", "object": "dossier 42"}


def client(sandbox, **options):
    options.setdefault("quota_store", MemoryStore())
    return ApiEntreprise(token=SANDBOX_TOKEN, base_url=sandbox.base_url, **options)


class Server:
    """A server of the test's own on loopback; ``handle(handler)`` answers."""

    def __init__(self, handle):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                handle(self)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def test_a_unite_legale_comes_back_typed_with_the_token_sent_and_the_trace_in_the_query(sandbox):
    before = len(sandbox.requests())
    r = client(sandbox).call("insee_unites_legales", ["552049447"], **TRACE)
    assert r["status"] == 200
    assert r["typed"]["tag"] == "unite-legale"
    assert r["typed"]["val"]["denomination"] == "SOCIETE NATIONALE SNCF"
    assert len(r["typed"]["val"]["date_creation"]) == 10
    assert r["data"]["siren"] == "552049447"
    json.dumps(r)
    sent = sandbox.requests()[before:]
    assert len(sent) == 1 and sent[0]["authorized"]
    assert [q for q in sent[0]["query"] if q[0] != "user_id"] == [[k, v] for k, v in TRACE.items()]


def test_invalid_input_is_refused_with_the_servers_codes_and_nothing_is_sent(sandbox):
    before = len(sandbox.requests())
    with pytest.raises(InvalidInputError) as e:
        client(sandbox).call("insee_unites_legales", ["552049448"], **{**TRACE, "context": " "})
    assert e.value.codes == ["00201", "00301"]
    assert "00301" in str(e.value)
    assert len(sandbox.requests()) == before


def test_a_server_error_comes_back_as_an_api_error_with_its_kind_and_codes(sandbox):
    with pytest.raises(ApiError) as e:
        client(sandbox).call("insee_etablissements", ["00000000000000"], **TRACE)
    assert (e.value.status, e.value.kind) == (404, "not-found") and e.value.codes
    with pytest.raises(ApiError) as e:
        ApiEntreprise(quota_store=MemoryStore(), token="wrong", base_url=sandbox.base_url).call("insee_unites_legales", ["552049447"], **TRACE)
    assert e.value.kind == "unauthorized" and "00101" in e.value.codes


def test_past_the_per_ip_quota_nothing_leaves_and_the_free_routes_stay_free(sandbox):
    api = client(sandbox, ip_quotas=[Quota(3, 60)])
    before = len(sandbox.requests())
    for _ in range(3):
        api.call("insee_unites_legales", ["552049447"], **TRACE)
    with pytest.raises(QuotaExceededError) as e:
        api.call("insee_unites_legales", ["552049447"], **TRACE)
    assert e.value.quota == "ip 3/1m" and e.value.retry_after_seconds > 0
    api.call("pings")
    assert len(sandbox.requests()) == before + 4


def test_the_token_never_follows_a_redirect_to_another_host():
    leaked = []

    def elsewhere_handle(h):
        leaked.append(h.headers.get("Authorization"))
        h.send_response(200)
        h.end_headers()

    elsewhere = Server(elsewhere_handle)

    def redirect(h):
        h.send_response(302)
        h.send_header("Location", f"{elsewhere.url}/v3/insee/sirene/unites_legales/552049447")
        h.end_headers()

    api = Server(redirect)
    try:
        with pytest.raises(ApiError) as e:
            ApiEntreprise(quota_store=MemoryStore(), token="secret", base_url=api.url).call("insee_unites_legales", ["552049447"], **TRACE)
        assert (e.value.status, e.value.kind) == (302, "unexpected")
        assert leaked == []
    finally:
        api.close()
        elsewhere.close()


def test_a_silent_api_times_out_after_5_s_for_json():
    silent = Server(lambda h: time.sleep(8))
    try:
        started = time.monotonic()
        with pytest.raises(CallTimeoutError) as e:
            ApiEntreprise(quota_store=MemoryStore(), token="t", base_url=silent.url).call("insee_unites_legales", ["552049447"], **TRACE)
        assert isinstance(e.value, TimeoutError) and e.value.detail == 5
        assert time.monotonic() - started < 7
    finally:
        silent.close()


def test_bad_configuration_says_what_to_do_and_a_closed_port_is_a_transport_error():
    with pytest.raises(ValueError, match="give the API Entreprise token"):
        ApiEntreprise(quota_store=MemoryStore(), token=" ")
    with pytest.raises(ValueError, match="must use https"):
        ApiEntreprise(quota_store=MemoryStore(), token="t", base_url="http://example.com")
    with pytest.raises(ValueError, match="scheme and a host only"):
        ApiEntreprise(quota_store=MemoryStore(), token="t", base_url="https://x.fr/v3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError):
        ApiEntreprise(quota_store=MemoryStore(), token="t", base_url=f"http://127.0.0.1:{port}").call("pings")


class Disguised(Codec):
    """A codec that lies: it builds another request than the one asked for."""

    def __init__(self, rewrite):
        super().__init__()
        self._rewrite = rewrite

    def prepare(self, base_url, request, now_iso=None):
        return self._rewrite(super(), base_url, request)


def test_a_codec_that_builds_a_url_for_another_host_or_lies_about_the_route_is_not_trusted(sandbox):
    def elsewhere(real, base, request):
        p = real.prepare(base, request)
        p["ok"]["url"] = "https://attacker.example/v3/insee/sirene/unites_legales/552049447"
        return p

    before = len(sandbox.requests())
    with pytest.raises(RefusedByHostError):
        client(sandbox, codec=Disguised(elsewhere)).call("insee_unites_legales", ["552049447"], **TRACE)

    def sirene_for_a_ping(real, base, request):
        return real.prepare(base, {"endpoint": "insee_unites_legales", "params": ["552049447"], "trace": TRACE})

    api = client(sandbox, codec=Disguised(sirene_for_a_ping), ip_quotas=[Quota(2, 60)])
    api.call("pings")
    api.call("pings")
    with pytest.raises(QuotaExceededError):
        api.call("pings")
    assert len(sandbox.requests()) == before + 2


def test_a_429_closes_the_endpoints_group_until_its_retry_after_and_the_next_call_is_not_sent():
    arrivals = []

    def limited(h):
        arrivals.append(h.path)
        body = b'{"errors":[{"code":"00429","title":"Too many requests","detail":"wait"}]}'
        h.send_response(429)
        h.send_header("Content-Type", "application/json")
        h.send_header("Retry-After", "30")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    api_server = Server(limited)
    try:
        api = ApiEntreprise(quota_store=MemoryStore(), token="t", base_url=api_server.url)
        with pytest.raises(ApiError) as e:
            api.call("insee_unites_legales", ["552049447"], **TRACE)
        assert (e.value.kind, e.value.retry_after_seconds) == ("rate-limited", 30)
        with pytest.raises(QuotaExceededError) as e:
            api.call("insee_unites_legales", ["552049447"], **TRACE)
        assert e.value.quota == "group json_resources_entreprise" and e.value.retry_after_seconds <= 30
        assert len(arrivals) == 1
    finally:
        api_server.close()


def test_clients_of_one_process_count_together_in_the_shared_store_and_a_full_quota_waits(sandbox):
    quotas = [Quota(3, 2)]
    a, b = client(sandbox, quota_store="shared", ip_quotas=quotas), client(sandbox, quota_store="shared", ip_quotas=quotas)
    impatient = client(sandbox, quota_store="shared", ip_quotas=quotas, wait_for_slot=False)
    assert a.quota_store.endswith("quotas.sqlite3")
    before = len(sandbox.requests())
    for api in (a, b, a):
        api.call("insee_unites_legales", ["552049447"], **TRACE)
    with pytest.raises(QuotaExceededError) as e:
        impatient.call("insee_unites_legales", ["552049447"], **TRACE)
    assert e.value.quota == "ip 3/2s"
    started = time.monotonic()
    b.call("insee_unites_legales", ["552049447"], **TRACE)
    assert time.monotonic() - started > 0.5, "the call waited for its slot"
    assert len(sandbox.requests()) == before + 4


def test_the_deadline_covers_the_whole_call_even_a_head_that_trickles():
    def trickle(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(40):
            handler.wfile.write(b"X-Slow: 1\r\n")
            handler.wfile.flush()
            time.sleep(0.25)

    slow = Server(trickle)
    try:
        api = ApiEntreprise(quota_store=MemoryStore(), token="t", base_url=slow.url)
        started = time.monotonic()
        with pytest.raises(CallTimeoutError):
            api.call("insee_unites_legales", ["552049447"], **TRACE)
        took = time.monotonic() - started
        assert 4.5 < took < 7, f"the call took {took:.1f} s for a 5 s deadline"
    finally:
        slow.close()


def test_an_answer_past_16_mib_is_not_read_whole_and_a_path_with_an_encoded_separator_never_leaves(sandbox):
    def huge(handler):
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.end_headers()
        chunk = b" " * (1 << 20)
        try:
            for _ in range(20):
                handler.wfile.write(chunk)
        except OSError:
            pass

    big = Server(huge)
    try:
        api = ApiEntreprise(quota_store=MemoryStore(), token="t", base_url=big.url)
        with pytest.raises(TransportError, match="larger than 16 MiB"):
            api.call("insee_unites_legales", ["552049447"], **TRACE)
    finally:
        big.close()

    real = Codec()
    before = len(sandbox.requests())
    for path in ["/v3/insee/sirene/unites_legales/552049447%2F..%2Fx", "/v3/insee/%2e%2e/ping/x", "/v3/insee/./sirene"]:

        class Sneaky:
            def prepare(self, base, request, path=path):
                ok = real.prepare(base, request)["ok"]
                return {"ok": {**ok, "url": f"{sandbox.base_url}{path}"}}

            def parse(self, *args):
                return real.parse(*args)

        api = client(sandbox, codec=Sneaky())
        with pytest.raises(RefusedByHostError, match="nothing was sent"):
            api.call("insee_unites_legales", ["552049447"], **TRACE)
    assert len(sandbox.requests()) == before


def test_a_call_over_tls_checks_the_certificate_and_goes_within_its_deadline(tmp_path):
    import re
    import ssl
    import subprocess

    from conftest import ROOT

    ca = tmp_path / "ca.pem"
    binary = ROOT / "target/release/api-entreprise"
    process = subprocess.Popen(
        [str(binary), "sandbox", "--port", "0", "--tls-ca-out", str(ca)], stdout=subprocess.PIPE, text=True
    )
    try:
        url = None
        while url is None:
            line = process.stdout.readline()
            assert line, "the TLS sandbox exited before listening"
            found = re.search(r"sandbox listening on (\S+)", line)
            url = found and found.group(1)
        assert url.startswith("https://")
        trusted = ApiEntreprise(
            quota_store=MemoryStore(), token=SANDBOX_TOKEN, base_url=url,
            ssl_context=ssl.create_default_context(cafile=str(ca)),
        )
        r = trusted.call("insee_unites_legales", ["552049447"], **TRACE)
        assert r["typed"]["val"]["denomination"] == "SOCIETE NATIONALE SNCF"
        # Without the sandbox's CA the certificate is refused: nothing is read.
        untrusted = ApiEntreprise(quota_store=MemoryStore(), token=SANDBOX_TOKEN, base_url=url)
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.call("insee_unites_legales", ["552049447"], **TRACE)
    finally:
        process.terminate()
        process.wait()


def test_a_token_the_api_refuses_as_such_stops_its_calls_and_nothing_more_is_sent(sandbox):
    api = ApiEntreprise(quota_store=MemoryStore(), token="a-token-the-api-does-not-know", base_url=sandbox.base_url)
    before = len(sandbox.requests())
    with pytest.raises(ApiError) as first:
        api.call("insee_unites_legales", ["552049447"], **TRACE)
    assert first.value.status == 401 and "00101" in first.value.codes
    with pytest.raises(TokenRefusedError) as held:
        api.call("insee_unites_legales", ["552049447"], **TRACE)
    assert held.value.code == "00101"
    assert "refused the token with 00101" in str(held.value) and "nothing was sent" in str(held.value)
    assert len(sandbox.requests()) == before + 1, "only the first call reached the API"
    # Another token of the same process is not held.
    client(sandbox).call("insee_unites_legales", ["552049447"], **TRACE)
