"""parse_email: real clients' payloads decode exactly; any other input is a PayloadError."""

from __future__ import annotations

import hashlib
import importlib.util
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from channels.charsets import decode_header_value, decode_text
from channels.mail.message import parse_email
from gateway.contract.contact import Channel, IncomingContact
from gateway.contract.errors import PayloadError

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads" / "smtp"
RECEIVED = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
CONTENT_HASH = "sha256 of the raw message"


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smtp_payload_build", PAYLOADS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = load_builder()


def parse(raw: bytes, **limits: int) -> IncomingContact:
    return parse_email(raw, source="smtp-test", received_at=RECEIVED, **limits)


def payload(name: str) -> bytes:
    return (PAYLOADS / f"{name}.eml").read_bytes()


@dataclass(frozen=True)
class Case:
    payload: str
    subject: str
    text: str
    name: str | None
    email: str | None
    external_id: str
    attachments: tuple[tuple[str, str, int], ...] = ()


CASES = [
    Case(
        "outlook_gb2312_gbk_chars",
        "关于镕锦路堃园小区夜间施工噪音的投诉",
        "您好：\n\n镕锦路堃园小区东门外的工地每晚23点后仍在施工，噪音很大，老人孩子无法休息。\n"
        "请尽快派人查看。\n\n王喆",
        "王喆",
        "wangzhe@example.cn",
        "000001db3c2a$5f1e2b40$1d5a81c0$@example.cn",
    ),
    Case(
        "foxmail_gbk_qp_alternative",
        "小区垃圾清运不及时",
        "您好，\n\n幸福里小区3号楼旁边的垃圾桶已经三天没有清运了，气味很大，影响居民出行，"
        "希望环卫部门尽快处理。\n\n赵磊",
        "赵磊",
        "zhaolei@qq.com",
        "2026112010310128742311@qq.com",
    ),
    Case(
        "webmail_utf8_html_only",
        "公交站台的电子屏坏了一个月",
        "您好！\n\n人民路&解放路路口公交站台的电子屏已经坏了一个月，\n"
        "显示的到站时间全是  “--”。\n\n请<尽快>维修，谢谢。\n\n陈静",
        "陈静",
        "chen.jing@163.com",
        "6b1f2c3d.4e5f.19a4c2d7e11.Coremail.chen.jing@163.com",
    ),
    Case(
        "big5_traditional",
        "屋邨升降機經常故障",
        "你好，\n\n我住在彩虹邨，升降機上個月壞咗三次，維修公司成日話冇零件。\n請派人跟進。\n\n陳大文",
        "陳大文",
        "chantaiman@netvigator.com",
        "20261120120501.4F2A1C@mail.netvigator.com",
    ),
    Case(
        "hz_gb2312",
        "路灯不亮",
        "学院路南段的路灯从上周起一直不亮，晚上骑车很危险。\n\n刘洋",
        "Liu Yang",
        "liuyang@example.edu.cn",
        "Pine.LNX.4.64.2611201320.12345@example.edu.cn",
    ),
    Case(
        "lying_latin1_is_utf8",
        "地铁站扶梯停运",
        "地铁2号线东站C出口的自动扶梯停运两周了。",
        "孙悦",
        "sunyue@example.com",
        "lying-latin1.1@example.com",
    ),
    Case(
        "lying_utf8_is_gbk",
        "菜市场占道经营",
        "东门菜市场的摊贩把摊位摆到了马路上，早高峰堵车严重。",
        "吴芳",
        "wufang@example.org",
        "lying-utf8.2@example.org",
    ),
    Case(
        "raw_gbk_no_charset",
        "[业主投诉] 噪音扰民",
        "楼下KTV每天营业到凌晨三点，低音炮震得整栋楼都能听见。",
        "周杰",
        "zhoujie@example.net",
        "20261120142000.GA1234@example.net",
    ),
    Case(
        "reply_quoted_signature",
        "Re: 工地夜间施工",
        "问题还没有解决，昨晚工地又施工到凌晨一点。\n请再催一下。\n\n"
        "在 2026年11月20日 周五 10:00，12345热线 <12345@hotline.local> 写道：\n"
        "> 您好，您反映的问题已转交区城管局处理，工单号 HL202611200001。\n"
        "> 如有疑问请回复本邮件。\n\n--\n李四\n手机：138 0000 0000",
        "李四",
        "lisi@example.com",
        "5d2c1a7e-8f3b-4c2d-9e1f-0a1b2c3d4e5f@example.com",
    ),
    Case(
        "related_inline_and_attachments",
        "共享单车堆满人行道（附照片）",
        "地铁口的共享单车把人行道堵死了，见附件照片和材料。",
        "郑洁",
        "zhengjie@example.com",
        "CAF=k3qY+related-9@mail.example.com",
        (
            ("part-6.png", "image/png", 77),
            ("投诉材料.pdf", "application/pdf", 125),
            ("现场照片.jpg", "image/jpeg", 632),
        ),
    ),
    Case(
        "no_message_id",
        "井盖丢失",
        "小区门口的井盖丢了，很危险！",
        "Zhang Wei",
        "zhangwei@example.com",
        CONTENT_HASH,
    ),
    Case(
        "forwarded_rfc822",
        "Fwd: 停水通知",
        "物业停水三天没有提前告知，请核实。",
        "冯军",
        "fengjun@example.com",
        "20261120170000.fwd@example.com",
        (("forwarded.eml", "message/rfc822", 368),),
    ),
    Case(
        "utf16_and_text_attachment",
        "情况说明",
        "请查收附件中的情况说明。",
        None,
        "report-tool@example.gov.cn",
        "utf16.7@example.gov.cn",
        (("情况说明.txt", "text/plain", 48),),
    ),
    Case(
        "filename_edge_cases",
        "业主联名信",
        "联名信见附件。",
        None,
        "owners@example.com",
        "edge.8@example.com",
        (
            ("堃园小区业主联名信.doc", "application/msword", 50),
            ("签名页.png", "image/png", 77),
            ("passwd", "application/octet-stream", 11),
            ("名单.xls", "application/vnd.ms-excel", 21),
            ("part-7.bin", "application/octet-stream", 4),
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.payload for case in CASES])
def test_a_client_payload_decodes_to_the_exact_contact(case: Case) -> None:
    raw = payload(case.payload)
    contact = parse(raw)
    external_id = case.external_id
    if external_id == CONTENT_HASH:
        external_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert contact.channel is Channel.EMAIL
    assert (contact.source, contact.received_at) == ("smtp-test", RECEIVED)
    assert contact.subject == case.subject
    assert contact.text == case.text
    assert (contact.citizen.name, contact.citizen.email) == (case.name, case.email)
    assert contact.external_id == external_id
    found = [(a.filename, a.media_type, len(a.data)) for a in contact.attachments]
    assert found == list(case.attachments)


def test_every_payload_is_in_the_table_and_the_builder_makes_it_byte_for_byte() -> None:
    assert {path.stem for path in PAYLOADS.glob("*.eml")} == {case.payload for case in CASES}
    for build in BUILD.BUILDERS:
        assert build() == payload(build.__name__), build.__name__


def test_attachments_carry_the_decoded_bytes() -> None:
    related = {
        a.filename: a.data for a in parse(payload("related_inline_and_attachments")).attachments
    }
    assert related == {
        "part-6.png": BUILD.PNG,
        "投诉材料.pdf": BUILD.PDF,
        "现场照片.jpg": BUILD.JPEG,
    }
    (note,) = parse(payload("utf16_and_text_attachment")).attachments
    assert note.data == "11月20日晚，小区东门施工至凌晨。\r\n".encode()


def test_a_forwarded_message_is_kept_whole_and_parses_on_its_own() -> None:
    (forwarded,) = parse(payload("forwarded_rfc822")).attachments
    inner = parse(forwarded.data)
    assert inner.subject == "停水通知"
    assert inner.text == "因管道维修，11月17日至19日全天停水。"
    assert (inner.citizen.name, inner.external_id) == (
        "阳光物业",
        "notice-20261116@sunshine-pm.example",
    )


def mail(body: str, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = f"From: a@example.com\r\nSubject: s\r\nContent-Type: {content_type}\r\n\r\n"
    return head.encode() + body.replace("\n", "\r\n").encode()


REPLIES = [
    pytest.param(
        "Still broken.\n\n-----Original Message-----\nFrom: 12345\n\nWe forwarded it.\n",
        "Still broken.\n\n-----Original Message-----\nFrom: 12345\n\nWe forwarded it.",
        id="outlook-original-message",
    ),
    pytest.param(
        "> 已转交。\n\n------------------ 原始邮件 ------------------\n发件人: 12345\n",
        "> 已转交。\n\n------------------ 原始邮件 ------------------\n发件人: 12345",
        id="qq-original-mail-with-nothing-new",
    ),
    pytest.param(
        "> We forwarded it.\n\nOn Fri, Nov 20, 2026 at 10:00 AM Hotline <\n"
        "12345@hotline.local> wrote:\n> earlier\n\nMy answer.\n--\nsig\n",
        "My answer.\n\n> We forwarded it.\n\nOn Fri, Nov 20, 2026 at 10:00 AM Hotline <\n"
        "12345@hotline.local> wrote:\n> earlier\n\n--\nsig",
        id="gmail-wrapped-attribution",
    ),
    pytest.param(
        "My answer.\n\nOn Fri, 20 Nov 2026, Hotline wrote:\nunprefixed quote\n",
        "My answer.\n\nOn Fri, 20 Nov 2026, Hotline wrote:\nunprefixed quote",
        id="attribution-without-markers-quotes-to-the-end",
    ),
    pytest.param(
        "> q1\nanswer1\n> q2\nanswer2\n",
        "answer1\nanswer2\n\n> q1\n\n> q2",
        id="interleaved",
    ),
    pytest.param("a  \n  --\nb\r\n\r\n\r\n\r\nc", "a\n  --\nb\n\nc", id="indented-dashes-stay"),
]


@pytest.mark.parametrize(("body", "text"), REPLIES)
def test_the_citizens_own_words_come_before_quotes_and_signature(body: str, text: str) -> None:
    assert parse(mail(body)).text == text


def test_an_html_reply_quotes_blockquotes_and_moves_them_after_the_new_words() -> None:
    markup = (
        "<div>我的回复</div><div>On Fri, Nov 20, 2026 Hotline wrote:<br>"
        "<blockquote>已转交。<br>请知悉。<blockquote><p>更早</p></blockquote></blockquote></div>"
        "<table><tr><td>a</td><td>b</td></tr></table>"
    )
    text = parse(mail(markup, "text/html; charset=utf-8")).text
    assert text == (
        "我的回复\n\na b\n\n"
        "On Fri, Nov 20, 2026 Hotline wrote:\n\n> 已转交。\n> 请知悉。\n\n> > 更早"
    )


def test_html_that_html_parser_rejects_falls_back_to_stripped_tags() -> None:
    text = parse(mail("<p>路灯</p><![ broken <b>坏了</b>&amp;", "text/html")).text
    assert text == "路灯 坏了 &"


DECODES = [
    pytest.param("镕".encode("gbk"), "gb2312", "镕", id="gb2312-label-gbk-bytes"),
    pytest.param("喆".encode("gbk"), "x-gbk", "喆", id="x-gbk"),
    pytest.param("堃".encode("gbk"), "CP936", "堃", id="cp936"),
    pytest.param("𠝹".encode("gb18030"), "GB18030", "𠝹", id="gb18030-four-byte"),
    pytest.param("邨".encode("big5hkscs"), "big5", "邨", id="big5-label-hkscs-bytes"),
    pytest.param("你好".encode("hz"), "HZ-GB-2312", "你好", id="hz"),
    pytest.param("你好".encode("utf-16-be"), "utf-16", "你好", id="utf16-no-bom-is-big-endian"),
    pytest.param("你好".encode("utf-16"), "utf-16", "你好", id="utf16-bom"),
    pytest.param("你好".encode("utf-16"), None, "你好", id="utf16-bom-unlabelled"),
    pytest.param(b"\xef\xbb\xbf" + "你好".encode(), "utf-8", "你好", id="utf8-bom-dropped"),
    pytest.param("你好".encode(), "iso-8859-1", "你好", id="latin1-label-utf8-bytes"),
    pytest.param("你好".encode("gbk"), "us-ascii", "你好", id="ascii-label-gbk-bytes"),
    pytest.param("你好".encode("gbk"), "utf-8", "你好", id="utf8-label-gbk-bytes"),
    pytest.param("café".encode("latin-1"), "iso-8859-1", "café", id="real-latin1-stays"),
    pytest.param("你好".encode(), '"UTF-8"', "你好", id="quoted-label"),
    pytest.param("你好".encode(), "utf-8*zh-cn", "你好", id="rfc2231-language"),
    pytest.param("你好".encode(), "x-no-such-charset", "你好", id="unknown-label"),
    pytest.param("你好".encode(), "base64", "你好", id="not-a-text-codec"),
    pytest.param(b"\\u4e2d", "unicode-escape", "\\u4e2d", id="escape-codec-refused"),
    pytest.param("你好".encode(), "utf\x00-8", "你好", id="nul-in-label"),
    pytest.param(b"", "utf-8", "", id="empty"),
]


@pytest.mark.parametrize(("data", "declared", "text"), DECODES)
def test_decode_text_finds_what_the_bytes_really_are(
    data: bytes, declared: str | None, text: str
) -> None:
    assert decode_text(data, declared) == text


# A citizen's letter, long enough to judge its charset by (GB18030 decodes this Big5 without
# an error, as gibberish); the traditional one in Big5, the simplified one in GBK.
NOISE_HANT = (
    "您好，我住在南岸街道，最近附近工地每天晚上十點以後還在施工，噪音非常大，"
    "嚴重影響居民休息，請相關單位儘快處理。謝謝！"
)
NOISE_HANS = (
    "您好，我住在翠屏区南岸街道，最近附近工地每天晚上十点以后还在施工，噪音非常大，"
    "严重影响居民休息，请相关部门尽快处理。谢谢！"
)


def mail_with_body(body: bytes, content_type: str) -> bytes:
    return (
        b"From: citizen@example.com\r\nTo: 12345@hotline.local\r\nSubject: noise\r\n"
        b"Message-ID: <charset-test@example.com>\r\nMIME-Version: 1.0\r\n"
        + f"Content-Type: {content_type}\r\n".encode()
        + b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        + body
        + b"\r\n"
    )


@pytest.mark.parametrize(
    ("text", "charset", "content_type"),
    [
        (NOISE_HANT, "big5", "text/plain"),
        (NOISE_HANS, "gbk", "text/plain"),
        (NOISE_HANT, "gbk", "text/plain"),  # traditional characters, mainland encoding
        (NOISE_HANS, "utf-8", "text/plain"),
        (NOISE_HANT, "utf-8", "text/plain"),
        (NOISE_HANT, "big5", "text/plain; charset=us-ascii"),
        (NOISE_HANT, "big5", "text/plain; charset=iso-8859-1"),
        (NOISE_HANT, "big5", "text/plain; charset=utf-8"),
        (NOISE_HANS, "gbk", "text/plain; charset=utf-8"),
    ],
    ids=[
        "unlabelled-big5", "unlabelled-gbk", "unlabelled-gbk-traditional", "unlabelled-utf8",
        "unlabelled-utf8-traditional", "ascii-label-big5", "latin1-label-big5",
        "utf8-label-big5", "utf8-label-gbk",
    ],
)  # fmt: skip
def test_an_unlabelled_or_mislabelled_body_is_read_in_the_charset_it_is_in(
    text: str, charset: str, content_type: str
) -> None:
    contact = parse(mail_with_body(text.encode(charset), content_type))
    assert contact.text == text


def test_a_label_that_decodes_cleanly_is_believed_and_short_text_is_not_judged() -> None:
    big5 = NOISE_HANT.encode("big5")
    labelled = parse(mail_with_body(big5, "text/plain; charset=gb2312"))
    assert labelled.text == big5.decode("gb18030")  # the sender said so, and it decodes
    # A few characters are too few to judge: the first charset that decodes them is taken.
    assert decode_text("路灯坏了三天".encode("gbk"), None) == "路灯坏了三天"
    short_big5 = "路燈壞了".encode("big5")
    assert decode_text(short_big5, None) == short_big5.decode("gb18030")


def test_decode_text_replaces_only_as_a_last_resort() -> None:
    assert "\ufffd" in decode_text(b"ok \x80\xff", "utf-8")


HEADERS = [
    pytest.param(None, "", id="missing"),
    pytest.param("=?gb2312?B?1cXI/Q==?=", "张三", id="encoded-gb2312"),
    pytest.param("=?UTF-8?Q?=E4=BD=A0_=E5=A5=BD?=", "你 好", id="q-underscore-is-space"),
    pytest.param("=?utf-8?B?5L2g5aW9?=\r\n =?utf-8?B?5LiW55WM?=", "你好世界", id="folded-words"),
    pytest.param("=?utf-8?B?5L2g5Q==?= =?utf-8?B?pb3kuJbnlYw=?=", "你好世界", id="split-mid-char"),
    pytest.param("Re: =?gbk?B?xOO6ww==?= again", "Re: 你好 again", id="mixed"),
    pytest.param(
        "张三".encode("gbk") + b" =?utf-8?B?5p2O5Zub?=", "张三 李四", id="raw-and-encoded"
    ),
    pytest.param("=?utf-8*zh?B?5L2g5aW9?=", "你好", id="rfc2231-language"),
    pytest.param("=?no-such?B?5L2g5aW9?=", "你好", id="unknown-charset"),
    pytest.param("=?utf-8?B?5L2g5aW9?", "=?utf-8?B?5L2g5aW9?", id="unterminated-kept"),
    pytest.param("a\x00b\tc", "ab c", id="controls"),
]


@pytest.mark.parametrize(("value", "text"), HEADERS)
def test_decode_header_value(value: str | bytes | None, text: str) -> None:
    assert decode_header_value(value) == text


def multipart(count: int) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(count))
    head = b"From: a@example.com\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    return head + parts + b"--b--\r\n"


def nested(depth: int) -> bytes:
    opening = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(depth)
    )
    closing = "".join(f"\r\n--b{i}--" for i in reversed(range(depth)))
    return (
        f"From: a@example.com\r\n{opening}Content-Type: text/plain\r\n\r\nx{closing}\r\n".encode()
    )


def test_a_message_with_too_many_parts_is_refused_naming_the_limit() -> None:
    with pytest.raises(PayloadError, match="more than 200 MIME parts"):
        parse(multipart(10_000))
    assert len(parse(multipart(199)).text.split("\n\n")) == 199
    with pytest.raises(PayloadError, match="more than 5 MIME parts"):
        parse(multipart(5), max_parts=5)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    with pytest.raises(PayloadError, match="nested deeper than the limit of 10"):
        parse(nested(50))
    assert parse(nested(9)).text == "x"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b" \r\n\r\n", "empty", id="blank"),
        pytest.param("只有正文，没有信头".encode(), "no headers", id="no-headers"),
        pytest.param(b"From: a@example.com\r\n\r\n \r\n", "no subject", id="nothing-to-say"),
        pytest.param(b"\xff\xfe\x00garbage", "no headers", id="binary"),
    ],
)
def test_input_that_cannot_be_a_letter_is_a_payload_error(raw: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(raw)


def test_a_subject_alone_or_an_attachment_alone_is_still_a_letter() -> None:
    assert parse(b"Subject: =?utf-8?B?5L2g5aW9?=\r\n\r\n").subject == "你好"
    raw = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    (image,) = parse(raw).attachments
    assert (image.filename, image.data) == ("part-1.png", b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        pytest.param(
            b"Subject: s\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n",
            "body",
            id="no-boundary",
        ),
        pytest.param(
            b"Subject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
            b"Content-Type: text/plain\r\n\r\nbody never closed\r\n",
            "body never closed",
            id="unterminated-boundary",
        ),
        pytest.param(
            b"Subject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\nno part\r\n",
            "no part",
            id="boundary-never-used",
        ),
    ],
)
def test_malformed_mime_is_still_a_letter(raw: bytes, text: str) -> None:
    contact = parse(raw)
    assert (contact.subject, contact.text) == ("s", text)


def test_a_naive_clock_is_a_programming_error_not_a_payload_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_email(payload("hz_gb2312"), source="smtp", received_at=datetime(2026, 11, 20))


MARKERS = [b"\r\n", b"--", b"=?gb2312?B?", b"?=", b"\r\n\r\n", b"<![", b"\x00", b"filename*0*="]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(out) + 1)
        match rng.randrange(5):
            case 0 if out:
                out[min(at, len(out) - 1)] = rng.randrange(256)
            case 1:
                del out[at : at + rng.randint(1, 40)]
            case 2:
                out[at:at] = rng.randbytes(rng.randint(1, 10))
            case 3:
                out[at:at] = out[at : at + rng.randint(1, 200)]
            case _:
                out[at:at] = rng.choice(MARKERS)
    return bytes(out)


def test_random_mutations_of_real_payloads_are_letters_or_payload_errors() -> None:
    rng = random.Random(12345)
    sources = [payload(case.payload) for case in CASES]
    for _ in range(300):
        try:
            contact = parse(mutate(rng.choice(sources), rng))
        except PayloadError:
            continue
        assert isinstance(contact, IncomingContact)
