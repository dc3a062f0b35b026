"""creevey_dask.sources.http against a real loopback server: retries, limits, safety, options."""

from __future__ import annotations

import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from creevey_dask.exceptions import (
    DownloadConnectionError,
    DownloadError,
    DownloadTimeoutError,
    HttpError,
    RobotsTagError,
    SizeLimitError,
    TooManyRedirectsError,
    TruncatedBodyError,
    UnsafeSourceError,
)
from creevey_dask.sources import http
from creevey_dask.sources.http import (
    HttpOptions,
    _transport,
    fetch,
    parse_retry_after,
    robots_opt_out,
)
from creevey_dask.testing import ImageServer

# -- options --------------------------------------------------------------------------


def test_options_defaults_are_polite_and_bounded() -> None:
    options = HttpOptions()
    assert options.per_host_limit == 8
    assert options.retries >= 3
    assert options.deadline <= 60
    assert options.user_agent.startswith("creevey_dask/")
    assert options.respect_robots_tag is True
    assert options.refuse_private is False


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"retries": -1}, ValueError, "retries must be an int >= 0"),
        ({"retries": 1.5}, TypeError, "retries must be an int"),
        ({"per_host_limit": 0}, ValueError, "per_host_limit must be an int >= 1"),
        ({"read_timeout": 0}, ValueError, "read_timeout must be > 0"),
        ({"connect_timeout": "5"}, TypeError, "connect_timeout must be a number"),
        ({"backoff_base": -1}, ValueError, "backoff_base must be >= 0"),
        ({"max_bytes": 0}, ValueError, "max_bytes must be an int >= 1"),
        ({"user_agent": ""}, ValueError, "user_agent must be a non-empty str"),
        ({"user_agent": "a\r\nX-Evil: 1"}, ValueError, "one line"),
        ({"refuse_private": "yes"}, TypeError, "refuse_private must be True or False"),
    ],
)
def test_options_are_validated(changes: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        HttpOptions(**changes)


def test_options_are_frozen_picklable_and_replace_timeout_as_a_pair() -> None:
    options = HttpOptions().replace(timeout=(1, 2), retries=0, per_host_limit=3, user_agent="me/1")
    assert (options.connect_timeout, options.read_timeout) == (1.0, 2.0)
    assert (options.retries, options.per_host_limit, options.user_agent) == (0, 3, "me/1")
    assert pickle.loads(pickle.dumps(options)) == options
    with pytest.raises(AttributeError):
        options.retries = 5  # type: ignore[misc]
    with pytest.raises(TypeError, match="no option"):
        options.replace(retry=1)


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("later") is None
    assert parse_retry_after(None) is None


def test_robots_opt_out_parsing() -> None:
    assert robots_opt_out(["noimageai"]) == "noimageai"
    assert robots_opt_out(["max-image-preview:large, noindex"]) == "noindex"
    assert robots_opt_out(["otherbot: noai"]) is None
    assert robots_opt_out(["*: noai"]) == "noai"
    assert robots_opt_out(["creevey_dask: none"]) == "none"
    assert robots_opt_out(["nofollow", "noarchive"]) is None


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "example.com/a.jpg",
        "/local/a.jpg",
        "http://",
    ],
)
def test_only_http_urls(url: str) -> None:
    with pytest.raises(UnsafeSourceError, match=r"only http and https|no host"):
        http.check_url(url)


@pytest.mark.parametrize(
    ("address", "private", "refused"),
    [
        ("169.254.169.254", False, True),
        ("fe80::1", False, True),
        ("::ffff:169.254.169.254", False, True),
        ("fd00:ec2::254", False, True),
        ("127.0.0.1", False, False),
        ("10.0.0.1", False, False),
        ("127.0.0.1", True, True),
        ("10.1.2.3", True, True),
        ("192.168.0.1", True, True),
        ("::1", True, True),
        ("93.184.216.34", True, False),
    ],
)
def test_address_checks(address: str, private: bool, refused: bool) -> None:
    if refused:
        with pytest.raises(UnsafeSourceError, match="refused"):
            http.check_address(address, refuse_private=private)
    else:
        http.check_address(address, refuse_private=private)


# -- fetching from the loopback server ----------------------------------------------------


def test_fetch_ok_sends_user_agent(image_server: ImageServer, fast_http: HttpOptions) -> None:
    result = fetch(image_server.url("/img/photo.jpg"), fast_http)
    assert result.status == 200
    assert result.body == image_server.files["photo.jpg"]
    assert result.attempts == 1
    assert list(image_server.user_agents) == [fast_http.user_agent]


def test_fetch_custom_user_agent(image_server: ImageServer, fast_http: HttpOptions) -> None:
    fetch(image_server.url("/img/photo.jpg"), fast_http.replace(user_agent="my-crawler/2.0"))
    assert list(image_server.user_agents) == ["my-crawler/2.0"]


@pytest.mark.parametrize(
    ("status", "name"), [(404, "Not Found"), (403, "Forbidden"), (410, "Gone")]
)
def test_4xx_is_not_retried(
    image_server: ImageServer, fast_http: HttpOptions, status: int, name: str
) -> None:
    path = f"/img/photo.jpg?status={status}"
    with pytest.raises(HttpError, match=f"^HTTP {status} {name}$") as info:
        fetch(image_server.url(path), fast_http)
    assert (info.value.status, info.value.attempts) == (status, 1)
    assert image_server.hits[path] == 1


def test_500_then_200_is_retried(image_server: ImageServer, fast_http: HttpOptions) -> None:
    path = "/img/photo.jpg?fail=2&code=500"
    result = fetch(image_server.url(path), fast_http)
    assert (result.status, result.attempts) == (200, 3)
    assert image_server.hits[path] == 3


def test_persistent_5xx_gives_up_after_retries(
    image_server: ImageServer, fast_http: HttpOptions
) -> None:
    path = "/img/photo.jpg?fail=99&code=502"
    with pytest.raises(HttpError, match=r"HTTP 502 Bad Gateway \(after 3 attempts\)") as info:
        fetch(image_server.url(path), fast_http)
    assert (info.value.status, info.value.attempts) == (502, 3)
    assert image_server.hits[path] == 3


@pytest.mark.parametrize("code", [503, 429])
def test_retry_after_seconds_is_honoured(
    image_server: ImageServer, fast_http: HttpOptions, code: int
) -> None:
    path = f"/img/photo.jpg?fail=1&code={code}&retry_after=0.3"
    start = time.monotonic()
    result = fetch(image_server.url(path), fast_http)
    assert time.monotonic() - start >= 0.3
    assert result.attempts == 2


def test_retry_after_is_capped(image_server: ImageServer, fast_http: HttpOptions) -> None:
    path = "/img/photo.jpg?fail=1&code=503&retry_after=3600"
    start = time.monotonic()
    result = fetch(image_server.url(path), fast_http.replace(retry_after_cap=0.2))
    elapsed = time.monotonic() - start
    assert result.attempts == 2
    assert 0.2 <= elapsed < 3


def test_retry_after_http_date(fresh_image_server: ImageServer, fast_http: HttpOptions) -> None:
    image_server = fresh_image_server
    import email.utils

    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # >= 1 s ahead after rounding
    path = (
        "/img/photo.jpg?"
        + "fail=1&code=429&retry_after="
        + when.replace(" ", "%20").replace(",", "%2C")
    )
    start = time.monotonic()
    result = fetch(image_server.url(path), fast_http.replace(retry_after_cap=3))
    assert result.attempts == 2
    assert time.monotonic() - start >= 0.95


def test_retry_after_beyond_the_deadline_gives_up_at_once(
    fresh_image_server: ImageServer, fast_http: HttpOptions
) -> None:
    image_server = fresh_image_server
    options = fast_http.replace(deadline=1.0, retry_after_cap=30)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError, match="deadline of 1 s per URL would pass") as info:
        fetch(image_server.url("/img/photo.jpg?fail=9&code=503&retry_after=20"), options)
    assert time.monotonic() - start < 1.0
    assert (info.value.attempts, info.value.status) == (1, 503)


def test_connection_reset_is_retried(image_server: ImageServer, fast_http: HttpOptions) -> None:
    result = fetch(image_server.url("/img/photo.jpg?reset=1"), fast_http)
    assert result.attempts == 2
    with pytest.raises(DownloadConnectionError, match=r"reset.*\(after 3 attempts\)") as info:
        fetch(image_server.url("/img/photo.jpg?reset=99"), fast_http)
    assert info.value.attempts == 3


def test_stall_times_out(image_server: ImageServer, fast_http: HttpOptions) -> None:
    start = time.monotonic()
    with pytest.raises(
        DownloadTimeoutError, match=r"read timeout of 0.4 s \(after 2 attempts\)"
    ) as info:
        fetch(image_server.url("/img/photo.jpg?stall=5"), fast_http.replace(retries=1))
    assert info.value.attempts == 2
    assert time.monotonic() - start < 2.5


def test_total_deadline_bounds_all_attempts(
    image_server: ImageServer, fast_http: HttpOptions
) -> None:
    options = fast_http.replace(read_timeout=0.5, deadline=0.8, retries=10)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError):
        fetch(image_server.url("/img/photo.jpg?stall=5"), options)
    assert time.monotonic() - start < 1.5


def test_short_body_is_an_error(image_server: ImageServer, fast_http: HttpOptions) -> None:
    size = len(image_server.files["photo.jpg"])
    with pytest.raises(TruncatedBodyError, match=f"after {size // 2} of the {size} bytes") as info:
        fetch(image_server.url("/img/photo.jpg?short=1"), fast_http)
    assert info.value.attempts == 3
    assert info.value.nbytes == size // 2


def test_size_cap_from_content_length(image_server: ImageServer, fast_http: HttpOptions) -> None:
    with pytest.raises(
        SizeLimitError, match=r"100000 bytes \(Content-Length\) is larger than max_bytes=5000"
    ) as info:
        fetch(image_server.url("/big/100000"), fast_http.replace(max_bytes=5000))
    assert info.value.attempts == 1


def test_size_cap_enforced_while_streaming(
    image_server: ImageServer, fast_http: HttpOptions
) -> None:
    with pytest.raises(SizeLimitError, match="larger than max_bytes=5000; stopped after") as info:
        fetch(image_server.url("/big/5000000?nolength=1"), fast_http.replace(max_bytes=5000))
    assert info.value.nbytes is not None
    assert 5000 < info.value.nbytes <= 5000 + 64 * 1024


def test_body_without_length_is_read_to_the_end(
    image_server: ImageServer, fast_http: HttpOptions
) -> None:
    result = fetch(image_server.url("/img/photo.jpg?nolength=1"), fast_http)
    assert result.body == image_server.files["photo.jpg"]


def test_redirect_chain_is_followed(image_server: ImageServer, fast_http: HttpOptions) -> None:
    result = fetch(image_server.url("/redirect/3/photo.jpg"), fast_http)
    assert result.body == image_server.files["photo.jpg"]
    assert result.final_url.endswith("/img/photo.jpg")
    assert result.attempts == 1


def test_too_many_redirects(image_server: ImageServer, fast_http: HttpOptions) -> None:
    with pytest.raises(TooManyRedirectsError, match="more than 2 redirects"):
        fetch(image_server.url("/redirect/5/photo.jpg"), fast_http.replace(max_redirects=2))


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.com/x.jpg"])
def test_redirect_to_another_scheme_is_refused(
    image_server: ImageServer, fast_http: HttpOptions, target: str
) -> None:
    with pytest.raises(UnsafeSourceError, match=r"redirect refused: .* only http and https"):
        fetch(image_server.url(f"/redirect-to?url={target}"), fast_http)


def test_redirect_to_metadata_address_is_refused(
    image_server: ImageServer, fast_http: HttpOptions
) -> None:
    url = image_server.url("/redirect-to?url=http://169.254.169.254/latest/meta-data/")
    start = time.monotonic()
    with pytest.raises(UnsafeSourceError, match="link-local or cloud-metadata"):
        fetch(url, fast_http)
    assert time.monotonic() - start < 1  # refused before any connection attempt


def test_refuse_private_refuses_loopback(image_server: ImageServer, fast_http: HttpOptions) -> None:
    with pytest.raises(UnsafeSourceError, match="private, loopback"):
        fetch(image_server.url("/img/photo.jpg"), fast_http.replace(refuse_private=True))
    with pytest.raises(UnsafeSourceError, match="private, loopback"):
        fetch(
            image_server.url("/img/photo.jpg", host="localhost"),
            fast_http.replace(refuse_private=True),
        )
    assert not image_server.hits


def test_robots_tag_is_honoured_and_switchable(
    image_server: ImageServer, fast_http: HttpOptions
) -> None:
    url = image_server.url("/img/photo.jpg?robots=noai,%20noimageai")
    with pytest.raises(RobotsTagError, match="X-Robots-Tag 'noai'") as info:
        fetch(url, fast_http)
    assert (info.value.status, info.value.attempts) == (200, 1)
    result = fetch(url, fast_http.replace(respect_robots_tag=False))
    assert result.body == image_server.files["photo.jpg"]


def test_robots_tag_for_another_bot_is_ignored(
    image_server: ImageServer, fast_http: HttpOptions
) -> None:
    result = fetch(image_server.url("/img/photo.jpg?robots=googlebot:%20noindex"), fast_http)
    assert result.status == 200


def test_connection_refused(fast_http: HttpOptions) -> None:
    server = ImageServer().start()
    url = server.url("/img/x.jpg")
    server.stop()
    with pytest.raises(DownloadConnectionError, match="refused") as info:
        fetch(url, fast_http.replace(retries=1))
    assert info.value.attempts == 2
    assert isinstance(info.value, ConnectionError)


def test_download_errors_pickle() -> None:
    err = HttpError("HTTP 404 Not Found", url="http://x/y", status=404, attempts=1, nbytes=0)
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.status, back.attempts) == (HttpError, str(err), 404, 1)
    assert isinstance(back, DownloadError)
    assert isinstance(back, OSError)


# -- sessions and the per-host limit -------------------------------------------------------


def test_one_session_per_thread_reused_and_one_tls_context() -> None:
    sessions: list[object] = []
    lock = threading.Lock()

    def grab() -> None:
        first, second = _transport.pool_manager(False), _transport.pool_manager(False)
        assert first is second
        assert _transport.pool_manager(True) is not first  # the stricter rule has its own
        with lock:
            sessions.append(first)

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in sessions}) == 4
    contexts = {id(s.connection_pool_kw["ssl_context"]) for s in sessions}  # type: ignore[attr-defined]
    assert len(contexts) == 1  # the CA bundle is loaded once per process


def test_kept_alive_connections_go_with_their_threads(image_server: ImageServer) -> None:
    import gc
    import weakref

    urls = [image_server.url(f"/img/many/{i:03d}.jpg", host="127.0.0.1") for i in range(6)]
    urls += [image_server.url(f"/img/many/{i:03d}.jpg", host="localhost") for i in range(6)]
    options = HttpOptions(retries=0)
    managers: list[weakref.ref[object]] = []
    bodies: list[int] = []

    def fetch_all() -> None:
        for url in urls:
            bodies.append(len(fetch(url, options).body))
        manager = _transport.pool_manager(False)
        assert len(manager.pools) == 2  # kept-alive connections to both hosts
        managers.append(weakref.ref(manager))
        del manager

    threads = [threading.Thread(target=fetch_all) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert len(bodies) == 36
    assert min(bodies) > 0
    # a row thread's manager (and so its sockets) is gone when the thread is: a
    # long-lived process (a notebook, a dask worker) does not pile up connections
    assert len(managers) == 3
    assert all(ref() is None for ref in managers)


def test_per_host_limit_holds_across_threads(
    fresh_image_server: ImageServer, fast_http: HttpOptions
) -> None:
    image_server = fresh_image_server
    options = fast_http.replace(per_host_limit=3, read_timeout=5)
    urls = [
        image_server.url(f"/img/many/{i:03d}.jpg?stall=0.15", host="127.0.0.1") for i in range(12)
    ]
    urls += [
        image_server.url(f"/img/many/{i:03d}.jpg?stall=0.15", host="localhost") for i in range(12)
    ]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda u: fetch(u, options), urls))
    assert all(r.status == 200 for r in results)
    # 127.0.0.1 and localhost are one server (one address): one limit for both spellings
    assert image_server.max_active_total == 3
    assert image_server.max_active["127.0.0.1"] >= 1
    assert image_server.max_active["localhost"] >= 1


def test_the_wait_for_a_slot_is_not_charged_to_the_deadline(
    fresh_image_server: ImageServer, fast_http: HttpOptions
) -> None:
    # one slot, four requests of 0.4 s each: the last waits 1.2 s, past its 1 s deadline
    options = fast_http.replace(per_host_limit=1, deadline=1.0, read_timeout=1.0, retries=0)
    urls = [fresh_image_server.url(f"/img/many/{i:03d}.jpg", stall=0.4) for i in range(4)]
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda u: fetch(u, options), urls))
    assert time.monotonic() - started >= 1.6  # they really queued for the one slot
    assert [r.status for r in results] == [200] * 4
    assert fresh_image_server.max_active_total == 1


def test_a_wait_for_a_slot_past_slot_wait_names_the_host_and_the_bound(
    fresh_image_server: ImageServer, fast_http: HttpOptions
) -> None:
    options = fast_http.replace(per_host_limit=1, slot_wait=0.3, read_timeout=3.0, retries=0)
    holder = fresh_image_server.url("/img/photo.jpg", stall=1.5)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(fetch, holder, options)
        time.sleep(0.3)  # the holder has the one slot
        with pytest.raises(DownloadTimeoutError) as info:
            fetch(fresh_image_server.url("/img/wide.jpg"), options)
        assert held.result().status == 200
    message = str(info.value)
    assert message == (
        "no request slot for '127.0.0.1' within slot_wait=0.3 s (per_host_limit=1): "
        "other requests to the host held them all"
    )
    assert "\n" not in message


def test_retry_after_pauses_the_whole_server(
    fresh_image_server: ImageServer, fast_http: HttpOptions
) -> None:
    image_server = fresh_image_server
    options = fast_http.replace(retries=0, retry_after_cap=5)
    start = time.monotonic()
    with pytest.raises(HttpError, match="HTTP 429"):
        fetch(image_server.url("/img/photo.jpg?fail=9&code=429&retry_after=0.6"), options)
    # another URL on the same server waits for the pause the server asked for
    result = fetch(image_server.url("/img/icon.png"), options)
    assert result.status == 200
    assert time.monotonic() - start >= 0.6
    # and a URL that cannot wait that long fails at once, without a request
    with pytest.raises(HttpError, match="HTTP 503"):
        fetch(image_server.url("/img/photo.jpg?fail=9&code=503&retry_after=3"), options)
    with pytest.raises(DownloadTimeoutError, match=r"asked \(Retry-After\) for a pause"):
        fetch(image_server.url("/img/icon.png"), options.replace(deadline=1))
    assert image_server.hits["/img/icon.png"] == 1
