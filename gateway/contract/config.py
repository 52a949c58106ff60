"""config.yaml: one validated file, environment overrides for secrets and the database URL."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.contract.errors import ConfigurationError
from ivr.menu import IvrConfig
from store.pii import Keyring, PiiError

# Environment variables that override a key: secrets and the database URL stay out of files.
ENV_OVERRIDES: Mapping[str, tuple[str, ...]] = {
    "HOTLINE_DATABASE_URL": ("database", "url"),
    "HOTLINE_RELAY_PASSWORD": ("outgoing_mail", "password"),
    "HOTLINE_WEB_SECRET": ("channels", "web", "secret"),
    "HOTLINE_TWILIO_AUTH_TOKEN": ("channels", "twilio", "auth_token"),
    "HOTLINE_PII_KEYS": ("pii", "keys"),
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(Section):
    url: str = "sqlite:///var/hotline.db"
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # SQLite waits this long for another writer before giving up.
    busy_timeout_seconds: float = Field(default=10.0, gt=0)
    pool_size: int = Field(default=5, ge=1)


class PiiConfig(Section):
    """The keys citizens' details are encrypted under at rest (docs/privacy.md)."""

    # "id:base64key[,id2:base64key2]", the first one encrypting; set HOTLINE_PII_KEYS rather
    # than writing keys here. Unset, one key is made once and kept in key_file.
    keys: str | None = None
    key_file: Path = Path("var/pii.key")

    @field_validator("keys")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value:
            try:
                Keyring.parse(value)
            except PiiError as exc:
                raise ValueError(str(exc)) from exc
        return value


class StorageConfig(Section):
    attachments_dir: Path = Path("var/attachments")
    spool_dir: Path = Path("var/spool")
    spool_drain_interval_seconds: float = Field(default=5.0, gt=0)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class PageLimits(Section):
    """How large a fax may say it is, read from its page headers before a pixel is decoded
    (gateway/engine/pages.py). The defaults are far above a real fax: a fine-mode A4 page is
    1728 x 2200 (3.8 Mpx), A4 at 400 dpi 16 Mpx, A3 at 600 dpi 70 Mpx; Tesseract needs
    about 4 bytes a pixel, so a page at the limit is read in about 350 MB."""

    max_pages: int = Field(default=100, ge=1)
    max_page_pixels: int = Field(default=80_000_000, ge=1)
    # 100 A4 pages at 300 dpi (8.7 Mpx each) are 870 Mpx.
    max_total_pixels: int = Field(default=1_000_000_000, ge=1)


class FaxConfig(Section):
    """Which mail is a fax: by envelope sender, by our recipient address, or by the headers
    fax servers write (X-Fax-*, HylaFAX's "facsimile received" subject)."""

    senders: list[str] = []
    recipients: list[str] = ["fax@hotline.local"]
    detect_by_headers: bool = True
    limits: PageLimits = PageLimits()
    # Reads a PDF fax's page count and page sizes (poppler-utils, beside pdftoppm).
    pdfinfo: str = "pdfinfo"
    pdfinfo_timeout_seconds: float = Field(default=10, gt=0)


class SmtpConfig(Section):
    enabled: bool = True
    source: str = "smtp"
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    hostname: str = "hotline.local"
    # Mail is taken only for these addresses and domains: never an open relay.
    recipients: list[str] = ["12345@hotline.local"]
    domains: list[str] = []
    max_message_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_parts: int = Field(default=200, gt=0)
    timeout_seconds: float = Field(default=300, gt=0)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    fax: FaxConfig = FaxConfig()
    # A fax past fax.limits is refused with 552 and its mail kept here, one file each.
    quarantine_dir: Path = Path("var/smtp/quarantine")

    def accepts(self, address: str) -> bool:
        """Ours: a listed recipient, a fax recipient, or any address at a listed domain."""
        address = address.strip().lower()
        ours = {r.lower() for r in (*self.recipients, *self.fax.recipients)}
        return address in ours or address.rpartition("@")[2] in {d.lower() for d in self.domains}

    @model_validator(mode="after")
    def _tls_pair(self) -> SmtpConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self


class ModemConfig(Section):
    name: str
    # A serial device, or "simulator" to attach the project's modem simulator (demos, tests).
    device: str = "simulator"
    baud: int = Field(default=115200, gt=0)
    pin: str | None = None
    smsc: str | None = None


class GsmConfig(Section):
    """SMS through a pool of GSM modems (python-gsmmodem-new's serial and AT layers)."""

    enabled: bool = True
    modems: list[ModemConfig] = [ModemConfig(name="modem-1")]
    # The simulator's control socket when a modem's device is "simulator".
    simulator_control: str = "127.0.0.1:7100"
    # +CMTI only wakes the sweep; AT+CMGL runs this often anyway (notifications get lost).
    sweep_interval_seconds: float = Field(default=0.5, gt=0)
    command_timeout_seconds: float = Field(default=10, gt=0)
    # A long message whose parts have not all arrived by then is stored with what came.
    incomplete_after_seconds: float = Field(default=600, gt=0)
    send_per_minute: float = Field(default=20, gt=0)
    reconnect_min_seconds: float = Field(default=1, gt=0)
    reconnect_max_seconds: float = Field(default=60, gt=0)
    # After this many failed connects in a row a modem leaves the pool for sending.
    max_failures: int = Field(default=5, ge=1)
    malformed_dir: Path = Path("var/gsm/malformed")


class WebConfig(Section):
    """The citizen's web site: the letter form, tracking and published replies (选登)."""

    enabled: bool = True
    source: str = "web"
    # Signs form tokens; every node behind a balancer needs the same one. Unset, one is made
    # once and kept in secret_file.
    secret: str | None = None
    secret_file: Path = Path("var/web.secret")
    min_fill_seconds: float = Field(default=3, ge=0)
    form_max_age_hours: float = Field(default=24, gt=0)
    letters_per_ip_per_hour: int = Field(default=10, ge=1)
    letters_per_phone_per_day: int = Field(default=5, ge=1)
    # Wrong tracking number/code pairs before an address is told to wait (guessing codes).
    lookups_failed_per_ip_per_hour: int = Field(default=20, ge=1)
    max_attachments: int = Field(default=5, ge=0)
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_text_chars: int = Field(default=5000, gt=0)
    # A text field's bytes kept when the form is read; a longer one is cut there and named
    # with its limit, the rest of the form kept. Holds max_text_chars of 4-byte characters.
    max_field_bytes: int = Field(default=64 * 1024, ge=1024)
    # The site's address as citizens' browsers see it, with any prefix a proxy strips
    # (https://12345.city.gov.cn/xinfang): its links and form actions are built from it,
    # never from the Host header. Unset: links are paths (/letters) on whatever address
    # the browser used.
    public_url: str = Field(default="", pattern=r"^(https?://[^/?#\s]+(/[^?#\s]*)?)?$")
    # Reverse proxies whose X-Forwarded-For names the citizen's address (IPs or networks).
    trusted_proxies: list[str] = []
    published_page_size: int = Field(default=20, ge=1, le=200)

    @model_validator(mode="after")
    def _text_fits(self) -> WebConfig:
        if self.max_field_bytes < 4 * self.max_text_chars:
            raise ValueError("max_field_bytes must hold max_text_chars characters of 4 bytes")
        return self


class TwilioConfig(Section):
    """Twilio's webhooks for rented numbers: SMS, and calls through the IVR."""

    enabled: bool = False
    source: str = "twilio"
    account_sid: str = ""
    auth_token: str | None = None
    # The address Twilio calls, as Twilio sees it (behind a proxy it is not ours): every
    # request's signature is checked against it.
    public_url: str = "http://127.0.0.1:8080"
    # Receipts and replies to citizens by SMS go through Twilio's REST API from this number.
    sms_route: bool = False
    from_number: str | None = None
    messaging_service_sid: str | None = None
    # Twilio's REST API; another address only for a stand-in (simulators/twilio).
    api_url: str = "https://api.twilio.com"
    # Twilio's text-to-speech for the IVR prompts (config.yaml's ivr.prompts).
    voice: str = "Polly.Zhiyu"
    language: str = "cmn-CN"
    timeout_seconds: float = Field(default=15, gt=0)
    # The seats' call queue is on the SIP side: a caller who asks for a person is dialled
    # there (<Dial><Sip>), to ivr.agent.queue_entry at this gateway's SIP address, e.g.
    # sip:queue@sip.hotline.example. None: with ivr.agent.queue they leave a message.
    queue_uri: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> TwilioConfig:
        if self.enabled and not (self.account_sid and self.auth_token):
            raise ValueError("account_sid and auth_token (HOTLINE_TWILIO_AUTH_TOKEN) are needed")
        if self.sms_route and not (self.from_number or self.messaging_service_sid):
            raise ValueError("sms_route needs from_number or messaging_service_sid")
        return self


class KamailioConfig(Section):
    """The front door when there is more than one SIP worker (docs/channels/sip.md)."""

    binary: str = "kamailio"
    # Where the generated kamailio.cfg and dispatcher.list are written and its pid kept.
    run_dir: Path = Path("var/kamailio")
    # OPTIONS pings to each worker; a worker that stops answering is out after ~2 pings.
    ping_interval_seconds: int = Field(default=2, ge=1)
    # How long a call's slot stays counted without its BYE (a killed worker's calls):
    # near the longest call, or a dead worker's slots block the restarted one.
    call_slot_expire_seconds: int = Field(default=600, ge=30)
    shared_memory_mb: int = Field(default=64, ge=16)
    children: int = Field(default=4, ge=1)
    # Several nodes (docs/operations.md): other nodes' workers this Kamailio dispatches to
    # besides its own, "host:port" each (their worker_host:worker_base_port+n). It sends to
    # them from its own workers' socket (worker_host:port), which those nodes list below.
    peer_workers: list[tuple[str, int]] = []
    # Other nodes' Kamailio whose calls this node's workers take besides their own
    # Kamailio's: "host:port" of the socket each sends from (its worker_host and port).
    peer_fronts: list[tuple[str, int]] = []

    @field_validator("peer_workers", "peer_fronts", mode="before")
    @classmethod
    def _addresses(cls, value: object) -> object:
        """Each "10.0.0.2:5070" or "[fd00::2]:5070" as (host, port): an IP address, since
        Kamailio runs without DNS and a worker compares it with the packet's source."""
        if not isinstance(value, list):
            return value
        parsed: list[object] = []
        for entry in value:
            if not isinstance(entry, str):
                parsed.append(entry)
                continue
            host, _, port = entry.rpartition(":")
            try:
                address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
            except ValueError:
                address = None
            in_range = port.isdigit() and 0 < int(port) < 65536
            if address is None or address.is_unspecified or not in_range:
                raise ValueError(f"{entry!r} is not host:port with an IP address")
            parsed.append((str(address), int(port)))
        return parsed


class WebCallConfig(Section):
    """网上呼叫: calls from the citizen's browser (docs/channels/webrtc.md). The page's JsSIP
    speaks SIP over WebSocket to Kamailio, rtpengine turns the browser's DTLS-SRTP and ICE
    into the plain RTP the workers answer. Needs Kamailio (workers >= 2)."""

    enabled: bool = False
    # The letters' source (their channel is webcall).
    source: str = "webcall"
    # Kamailio's WebSocket listener on channels.sip.host. Plain ws: a public site puts it
    # behind its TLS reverse proxy as wss:// (browsers only give a microphone to https).
    ws_port: int = Field(default=5066, ge=1, le=65535)
    # The address the page's JsSIP connects to, as the browser sees it; empty:
    # ws://<the page's host>:<ws_port>.
    ws_url: str = Field(default="", pattern=r"^(wss?://[^\s\"'<>]+)?$")
    # Pages that may open the WebSocket (their Origin, e.g. https://12345.city.gov.cn);
    # empty: any (the call still needs a token from this site).
    allowed_origins: list[str] = []
    # The number the page calls (ivr.agent.lines and the IVR see it as dialled).
    number: str = Field(default="12345", pattern=r"^[0-9A-Za-z*#+._-]{1,32}$")
    # A call token from the site is good for this long: the call must start within it.
    token_seconds: int = Field(default=120, ge=10)
    calls_per_ip_per_hour: int = Field(default=20, ge=1)
    rtpengine_binary: str = "rtpengine"
    # rtpengine's control port (ng protocol, on loopback) and its media ports.
    rtpengine_ng_port: int = Field(default=22222, ge=1, le=65535)
    rtp_port_min: int = Field(default=30000, ge=1024, le=65535)
    rtp_port_max: int = Field(default=30999, ge=1024, le=65535)
    # Where rtpengine takes the browsers' media: the address they reach (null: sip host).
    # Behind NAT, "private!public" as rtpengine's --interface takes it.
    media_interface: str | None = None

    @model_validator(mode="after")
    def _port_range(self) -> WebCallConfig:
        if self.rtp_port_min > self.rtp_port_max:
            raise ValueError("rtp_port_min must not be above rtp_port_max")
        return self


class SipConfig(Section):
    """Phone calls over SIP (pjsua2), served by a pool of worker processes."""

    enabled: bool = True
    source: str = "sip"
    # Where trunks and PBXs send their INVITEs: the only worker itself, or Kamailio.
    host: str = "127.0.0.1"
    port: int = Field(default=5060, ge=0, le=65535)
    transports: list[Literal["udp", "tcp"]] = ["udp", "tcp"]
    workers: int = Field(default=1, ge=1, le=64)
    # pjsua2-python is built with PJSUA_MAX_CALLS=4: one process holds 4 calls (pjsua
    # accepts a larger maxCalls without a word and still refuses the fifth INVITE).
    calls_per_worker: int = Field(default=4, ge=1, le=4)
    # Worker n listens on worker_host:(worker_base_port + n) when there is more than one:
    # loopback behind this node's Kamailio alone; an address of this machine that other
    # nodes' Kamailio reach when they front this pool too (kamailio.peer_workers there).
    worker_base_port: int = Field(default=5070, ge=1024, le=65000)
    worker_host: str = "127.0.0.1"
    # Where RTP is sent and received (Kamailio relays signalling only): by default the
    # address callers reach, `host`.
    media_address: str | None = None
    # Who may call: addresses or networks of the trunks/PBXs (the packet's source).
    # Every listener applies it: Kamailio, and each worker to what reaches it directly.
    allowed_sources: list[str] = ["127.0.0.0/8", "::1/128"]
    # Whose P-Asserted-Identity is believed (RFC 3325: only from a trust domain); from
    # anyone else the caller is the From. Empty: nobody's.
    trusted_identity_sources: list[str] = ["127.0.0.0/8", "::1/128"]
    # The one name a worker and Kamailio give in User-Agent/Server: nothing a scanner
    # could match to a version.
    user_agent: str = "12345"
    # How long a stopped recorder may take to write its file's last samples and header
    # (pjmedia closes it on the conference clock thread, after the recorder is dropped).
    recording_close_timeout_seconds: float = Field(default=5, gt=0)
    # A source refused this often within a minute is ignored for a while (no answer).
    throttle_after_failures: int = Field(default=10, ge=1)
    throttle_seconds: float = Field(default=60, gt=0)
    # Mandarin prompt recordings, 8 kHz mono WAV, one per ivr.prompts name; a city may
    # put its own recordings in another folder.
    prompts_dir: Path | None = None
    recordings_dir: Path = Path("var/recordings")
    # PJSIP's own log on stderr: 1 errors only, up to 5 for every SIP message.
    log_level: int = Field(default=1, ge=0, le=6)
    kamailio: KamailioConfig = KamailioConfig()
    webcall: WebCallConfig = WebCallConfig()

    @model_validator(mode="after")
    def _webcall_has_a_front(self) -> SipConfig:
        if self.webcall.enabled and self.workers < 2:
            raise ValueError("webcall needs Kamailio in front: workers must be 2 or more")
        return self


class ChannelsConfig(Section):
    smtp: SmtpConfig = SmtpConfig()
    gsm: GsmConfig = GsmConfig()
    web: WebConfig = WebConfig()
    twilio: TwilioConfig = TwilioConfig()
    sip: SipConfig = SipConfig()


class OutgoingMailConfig(Section):
    """The relay the hotline sends its e-mail (receipts, replies) through."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=0, le=65535)
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    from_address: str = "12345@hotline.local"
    from_name: str = "12345市民热线"
    timeout_seconds: float = Field(default=30, gt=0)


class OcrConfig(Section):
    enabled: bool = True
    tesseract: str = "tesseract"
    pdftoppm: str = "pdftoppm"
    languages: str = "chi_sim+eng"
    # 6 = one uniform block of text: a citizen's letter is one column, and Tesseract's
    # automatic layout (3) breaks short Chinese lines into fragments.
    page_segmentation_mode: int = Field(default=6, ge=0, le=13)
    timeout_seconds: float = Field(default=120, gt=0)


class SttConfig(Section):
    """Voicemail transcription with Vosk, in worker processes (each loads the model once)."""

    enabled: bool = True
    # A Vosk model directory, e.g. /opt/vosk/vosk-model-small-cn-0.22. None: jobs wait.
    model_path: Path | None = None
    workers: int = Field(default=1, ge=0)
    # Restrict recognition to these phrases plus [unk] (small models with a dynamic graph).
    grammar: list[str] = []
    # A long recording must not lose its claim while it is being read.
    lease_seconds: float = Field(default=3600, gt=0)


class LaneConfig(Section):
    # Jobs of the lane run at once in each process that runs it, each on its own thread.
    workers: int = Field(default=1, ge=1, le=32)
    # 0: the lane runs in `hotline serve`; n: in n worker processes serve keeps instead
    # (CPU-heavy work off the gateway's own process).
    processes: int = Field(default=0, ge=0, le=16)
    # Jobs a worker claims in one transaction and runs in turn: many small jobs (routing)
    # pay one claim and one completion, not one each.
    batch: int = Field(default=1, ge=1, le=100)
    # How often the lane looks for jobs other processes queued (a SIP worker's voicemail,
    # another node's letters); None: jobs.poll_interval_seconds. Looking only reads.
    poll_seconds: float | None = Field(default=None, gt=0)


class LanesConfig(Section):
    """Background work by lane (gateway.contract.kinds.LANES); voicemail transcription runs in the
    STT worker processes (``stt.workers``)."""

    route: LaneConfig = LaneConfig(workers=1, batch=8, poll_seconds=0.25)
    notify: LaneConfig = LaneConfig(workers=4)
    # One at a time per modem is all the modems take: more would only wait in turn.
    sms: LaneConfig = LaneConfig(workers=2)
    webhooks: LaneConfig = LaneConfig(workers=4, batch=16)
    media: LaneConfig = LaneConfig(workers=2)
    ocr: LaneConfig = LaneConfig(workers=1, processes=1)

    def processes(self) -> dict[str, int]:
        """{lane: its worker processes} (0: it runs in serve)."""
        return {name: lane.processes for name, lane in self}

    @model_validator(mode="after")
    def _notify_in_serve(self) -> LanesConfig:
        if self.notify.processes or self.sms.processes:
            raise ValueError(
                "jobs.lanes.notify and jobs.lanes.sms run in serve, beside the modems that send"
            )
        return self


class JobsConfig(Section):
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    lease_seconds: float = Field(default=600, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    # Retry n waits backoff * 2**(n-1) seconds.
    backoff_seconds: float = Field(default=30, gt=0)
    lanes: LanesConfig = LanesConfig()
    # Done jobs are deleted this long after they finished (failed ones stay for a person).
    keep_done_days: float = Field(default=7, gt=0)


CATEGORIES = ("complaint", "help", "suggestion", "inquiry", "report", "opinion", "other")
REPLY_TYPES = ("time_limited", "promised", "joint", "urgent")
REJECTIONS = ("malicious", "duplicate", "empty", "advertising", "judicial", "unidentified")


class DepartmentConfig(Section):
    code: str
    name: str
    contacts: list[str] = []


class RouteRule(Section):
    """First matching rule wins; an empty list matches anything."""

    department: str
    keywords: list[str] = []
    categories: list[str] = []
    districts: list[str] = []
    reply_type: Literal["time_limited", "promised", "joint", "urgent"] = "time_limited"
    # For joint letters: the co-departments beside the lead.
    with_departments: list[str] = []


class ScreeningConfig(Section):
    advertising: list[str] = ["优惠", "推广", "加微信", "代开发票", "促销", "免费领取"]
    advertising_threshold: int = Field(default=2, ge=1)
    abusive: list[str] = []
    judicial: list[str] = ["已起诉", "法院已受理", "正在诉讼", "仲裁中", "已立案审理"]
    # Categories rejected when no phone or e-mail reaches the citizen (举报 by the rules).
    require_identity_for: list[str] = ["report"]
    # What a rejected citizen is told, by reason: where to turn instead.
    replies: dict[str, str] = {
        "advertising": "您的来信属于推销广告，不属于12345热线受理范围。",
        "judicial": "您反映的事项已进入司法程序，请向承办法院或司法机关咨询。",
        "unidentified": "举报、投诉请提供真实姓名和联系方式，以便核实办理，请补充后重新来信。",
        "empty": "您的来信内容为空或无法答复，请补充具体情况后重新来信。",
        "malicious": "您的来信含有攻击性内容，不属于12345热线受理范围。",
        "duplicate": "您反映的事项已在办理中，我们将一并答复您。",
    }


class RoutingConfig(Section):
    enabled: bool = True
    departments: list[DepartmentConfig] = []
    rules: list[RouteRule] = []
    # Each category's keywords and their weights: written plain (weight 1) or `词: weight`,
    # so that a weak word (希望) counts less than a sure one (建议).
    category_keywords: dict[str, dict[str, float]] = {}
    districts: list[str] = []
    screening: ScreeningConfig = ScreeningConfig()
    duplicate_window_days: float = Field(default=7, gt=0)
    # Tuned on tests/letters/duplicates/pairs.yaml (tests/gateway/test_duplicate_pairs.py).
    duplicate_similarity: float = Field(default=0.5, gt=0, le=1)

    @field_validator("category_keywords", mode="before")
    @classmethod
    def _weighed(cls, value: Any) -> Any:
        """A list of words, each plain or a one-word mapping, read as {word: weight}."""
        if not isinstance(value, Mapping):
            return value  # pydantic says what is wrong
        weighed: dict[Any, Any] = {}
        for category, words in value.items():
            if not isinstance(words, list):
                weighed[category] = words
                continue
            weighed[category] = {}
            for word in words:
                weighed[category].update(word if isinstance(word, Mapping) else {word: 1})
        return weighed

    @model_validator(mode="after")
    def _known_names(self) -> RoutingConfig:
        codes = {d.code for d in self.departments}
        for i, rule in enumerate(self.rules):
            for code in [rule.department, *rule.with_departments]:
                if code not in codes:
                    raise ValueError(f"rules[{i}]: no department {code!r} in departments")
            for category in rule.categories:
                if category not in CATEGORIES:
                    raise ValueError(f"rules[{i}]: unknown category {category!r}")
        for category, weights in self.category_keywords.items():
            if category not in CATEGORIES:
                raise ValueError(f"category_keywords: unknown category {category!r}")
            for word, weight in weights.items():
                if not word.strip() or weight <= 0:
                    raise ValueError(
                        f"category_keywords.{category}: {word!r}: a word weighing more than 0"
                    )
        return self


class DeadlinesConfig(Section):
    """Reply limits in working days (statutory holidays and make-up days counted)."""

    days: dict[str, int] = {
        "inquiry": 3,
        "help": 3,
        "complaint": 7,
        "report": 7,
        "suggestion": 7,
        "opinion": 7,
        "other": 7,
    }
    joint_days: int = Field(default=15, ge=1)
    urgent_hours: float = Field(default=4, gt=0)
    extension_days: int = Field(default=5, ge=1)
    day_start: time = time(9)
    day_end: time = time(17, 30)
    extra_holidays: list[date] = []
    extra_workdays: list[date] = []
    # A year's State Council schedule, once chinese-calendar does not know it yet:
    # `hotline calendar import FILE` writes <year>.yaml here and the gateway reads them at start.
    calendar_dir: Path = Path("var/calendar")
    # Chasing: a warning this long before the deadline, an urge notice when it passes,
    # supervision when an urged letter is still unanswered this long after.
    warn_before_hours: float = Field(default=24, gt=0)
    supervise_after_hours: float = Field(default=48, gt=0)
    sweep_interval_seconds: float = Field(default=60, gt=0)


class VisitsConfig(Section):
    """回访: the satisfaction question the hotline asks a citizen after a final reply
    (gateway/core/workflow/asking.py), and what is done when nobody answers."""

    enabled: bool = True
    # Hours after the final reply before the question goes (0: with the reply itself);
    # later ones are sent by the sweep, once the citizen has had time to read the reply.
    ask_after_hours: float = Field(default=1, ge=0)
    # Days without an answer before the visit becomes an operator's callback task.
    callback_after_days: float = Field(default=3, gt=0)
    # The citizen's SMS or e-mail (its own words, the quoted mail left out) is taken as the
    # answer up to this length; a longer one is a new letter, unless it starts with 1, 2 or 3.
    answer_max_chars: int = Field(default=140, ge=1)


class ApiTokenConfig(Section):
    """A token given in config: only its SHA-256 is written here, never the token."""

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Literal["read", "write", "act", "pii"]] = ["read"]
    department: str | None = None


class ApiConfig(Section):
    """The integrator REST API under /api/v1 and Open311 GeoReport v2 under /open311/v2."""

    enabled: bool = True
    tokens: list[ApiTokenConfig] = []
    page_size: int = Field(default=50, ge=1, le=500)
    # Open311: extra service codes beside the seven categories (code -> name).
    open311_services: dict[str, str] = {}


class ConsoleConfig(Section):
    """The operator and department console under /console (gateway/frontends/console/)."""

    enabled: bool = True
    # Wrong passwords in a row before an account is locked, and for how long.
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_minutes: float = Field(default=15, gt=0)
    # A session ends after this long without a request, and after max_session_hours anyway.
    idle_minutes: float = Field(default=30, gt=0)
    max_session_hours: float = Field(default=12, gt=0)
    # Secure cookies always (behind TLS); otherwise whenever the request came over https.
    secure_cookies: bool = False
    page_size: int = Field(default=50, ge=10, le=500)


class SeatsConfig(Section):
    """Operators' phone seats (坐席, gateway/core/seats.py): their SIP accounts' digest realm
    and the passwords `hotline seats add` makes."""

    # The SIP digest realm (RFC 3261 22.4): part of each stored HA1, so the registrar's
    # realm must be the same; changing it needs `hotline seats reset-password` per seat.
    realm: str = Field(default="hotline", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
    # Letters and digits of a generated password (a desk phone's keypad can type them).
    password_length: int = Field(default=16, ge=12, le=64)
    # Kamailio (it runs when channels.sip.workers > 1) is the seats' registrar: desk phones
    # REGISTER there with digest auth over the seats table. Off, it refuses REGISTER.
    registrar: bool = True
    # Where desk phones register from (the packet's source), besides channels.sip
    # allowed_sources: the operators' network. They may only REGISTER and take calls.
    phone_sources: list[str] = ["127.0.0.0/8", "::1/128"]


class WebhookEndpoint(Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    url: str
    # Standard Webhooks secrets ("whsec_..."): the first signs; both are valid while rotating.
    # Prefer HOTLINE_WEBHOOK_SECRET_<NAME> in the environment over writing them here.
    secrets: list[str] = []
    events: list[str] = [
        "letter.created",
        "letter.assigned",
        "letter.replied",
        "letter.overdue",
        "letter.closed",
    ]
    # Thin payloads (ids and links) unless this is set and the endpoint may see PII.
    include_pii: bool = False


class WebhooksConfig(Section):
    endpoints: list[WebhookEndpoint] = []
    # No request to any host not listed here: no SSRF into the city's network.
    allowed_hosts: list[str] = []
    timeout_seconds: float = Field(default=10, gt=0)
    # Retries with exponential backoff for about this long, then dead-lettered.
    retry_for_hours: float = Field(default=24, gt=0)
    fanout_interval_seconds: float = Field(default=2, gt=0)
    # The public base URL of this gateway, for links in payloads.
    public_url: str = "http://127.0.0.1:8080"


class AcdSection(Section):
    """The call queue (ACD, gateway/core/acd.py and callqueue.py): the same fields as
    ``AcdConfig``, which gateway/core/callqueue.py makes from them, and how long a SIP worker
    may stay silent before its queued callers are given up."""

    # Priority classes, first served first (e.g. a line for the elderly before the rest).
    priorities: list[str] = Field(default=["elderly", "normal"], min_length=1)
    ring_timeout_seconds: float = Field(default=15, gt=0)
    max_wait_seconds: float = Field(default=180, gt=0)
    announce_every_seconds: float = Field(default=30, gt=0)
    not_answering_pause_seconds: float = Field(default=300, gt=0)
    wrap_up_seconds: float = Field(default=0, ge=0)
    owner_timeout_seconds: float = Field(default=15, gt=0)
    # Record both sides of each call a seat answers, attached to its letter like a
    # voicemail (the citizen's personal data: same access rules). Callers hear
    # ivr.prompts.recording_notice first. Kept keep_recordings_days, then deleted.
    record_calls: bool = False
    keep_recordings_days: float = Field(default=180, gt=0)

    @field_validator("priorities")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("priority classes must be distinct")
        return value


class Config(Section):
    timezone: str = "Asia/Shanghai"
    database: DatabaseConfig = DatabaseConfig()
    pii: PiiConfig = PiiConfig()
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    logging: LoggingConfig = LoggingConfig()
    channels: ChannelsConfig = ChannelsConfig()
    outgoing_mail: OutgoingMailConfig = OutgoingMailConfig()
    ocr: OcrConfig = OcrConfig()
    jobs: JobsConfig = JobsConfig()
    stt: SttConfig = SttConfig()
    routing: RoutingConfig = RoutingConfig()
    api: ApiConfig = ApiConfig()
    console: ConsoleConfig = ConsoleConfig()
    seats: SeatsConfig = SeatsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    deadlines: DeadlinesConfig = DeadlinesConfig()
    visits: VisitsConfig = VisitsConfig()
    acd: AcdSection = AcdSection()
    # The phone menu, shared by the SIP and Twilio channels (ivr/flow.py).
    ivr: IvrConfig = IvrConfig()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _lines_in_known_classes(self) -> Config:
        unknown = set(self.ivr.agent.lines.values()) - set(self.acd.priorities)
        if unknown:
            raise ValueError(f"ivr.agent.lines: {sorted(unknown)} not among acd.priorities")
        return self


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, validate and anchor relative paths.

    Relative paths (and a relative SQLite file) are taken from the config file's folder,
    so the gateway behaves the same whatever directory it is started from.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read: {exc.strerror}") from exc
        try:
            # libyaml's safe loader where it is built in: 1 ms for the shipped file, not 20.
            loaded = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigurationError(f"{path}: the top level must be a mapping of sections")
        raw = loaded or {}
        base = path.resolve().parent
    for name, keys in ENV_OVERRIDES.items():
        if environ.get(name):
            _set_path(raw, keys, environ[name])
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(_describe(path, exc)) from exc
    return _anchor(config, base)


def _set_path(raw: dict[str, Any], keys: tuple[str, ...], value: str) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _describe(path: Path | None, exc: ValidationError) -> str:
    where = str(path) if path else "configuration"
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"{where}: {key}: {problem}")
    return "\n".join(lines)


def _anchor(config: Config, base: Path) -> Config:
    storage = config.storage.model_copy(
        update={
            "attachments_dir": base / config.storage.attachments_dir,
            "spool_dir": base / config.storage.spool_dir,
        }
    )
    url = config.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        url = prefix + str(base / url[len(prefix) :])
    database = config.database.model_copy(update={"url": url})
    pii = config.pii.model_copy(update={"key_file": base / config.pii.key_file})
    smtp = config.channels.smtp
    smtp = smtp.model_copy(
        update={
            "tls_cert_file": smtp.tls_cert_file and base / smtp.tls_cert_file,
            "tls_key_file": smtp.tls_key_file and base / smtp.tls_key_file,
            "quarantine_dir": base / smtp.quarantine_dir,
        }
    )
    gsm = config.channels.gsm.model_copy(
        update={"malformed_dir": base / config.channels.gsm.malformed_dir}
    )
    web = config.channels.web.model_copy(
        update={"secret_file": base / config.channels.web.secret_file}
    )
    sip = config.channels.sip
    sip = sip.model_copy(
        update={
            "prompts_dir": sip.prompts_dir and base / sip.prompts_dir,
            "recordings_dir": base / sip.recordings_dir,
            "kamailio": sip.kamailio.model_copy(update={"run_dir": base / sip.kamailio.run_dir}),
        }
    )
    channels = config.channels.model_copy(update={"smtp": smtp, "gsm": gsm, "web": web, "sip": sip})
    stt = config.stt.model_copy(
        update={"model_path": config.stt.model_path and base / config.stt.model_path}
    )
    deadlines = config.deadlines.model_copy(
        update={"calendar_dir": base / config.deadlines.calendar_dir}
    )
    return config.model_copy(
        update={
            "storage": storage,
            "database": database,
            "pii": pii,
            "channels": channels,
            "stt": stt,
            "deadlines": deadlines,
        }
    )
