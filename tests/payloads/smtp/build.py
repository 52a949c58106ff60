"""Writes the .eml payloads beside this file, byte for byte as the named clients send them.

Run `python tests/payloads/smtp/build.py` from the repository root. The generated files are
committed; this script shows how each was made (labels, transfer encodings, header
encodings), so a reader can tell a deliberate lie (a wrong charset label) from a typo.
"""

from __future__ import annotations

import base64
import quopri
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
HOTLINE = "To: 12345@hotline.local"

# A 4x4 JPEG and PNG made once with Pillow, kept as constants so rebuilding is exact.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERX"
    "RTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAEAAQDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDHooorhPqD/9k="
)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAFElEQVR4nGOUkzvBAANMDEgANwcAMyIBDPgnQYUAAAAA"
    "SUVORK5CYII="
)
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)

Line = str | bytes


def crlf(*lines: Line) -> bytes:
    """Join lines with CRLF as SMTP DATA carries them; bytes lines are raw 8-bit."""
    return b"".join((x if isinstance(x, bytes) else x.encode("ascii")) + b"\r\n" for x in lines)


def b64(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def qp(text: str, charset: str) -> bytes:
    return quopri.encodestring(text.encode(charset)).replace(b"\n", b"\r\n")


def word(text: str, charset: str, encoding: str = "B") -> str:
    """One RFC 2047 encoded word."""
    data = text.encode(charset)
    if encoding == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    return f"=?{charset}?Q?{quopri.encodestring(data, header=True).decode()}?="


def outlook_gb2312_gbk_chars() -> bytes:
    """Outlook labels GBK text gb2312; 镕, 喆 and 堃 are not in GB2312 at all."""
    for char in "镕喆堃":
        try:
            char.encode("gb2312")
        except UnicodeEncodeError:
            continue
        raise AssertionError(f"{char} is in GB2312, the payload would prove nothing")
    boundary = "----=_NextPart_000_0001_01DB3C6D.6D4A5A40"
    text = (
        "您好：\r\n\r\n镕锦路堃园小区东门外的工地每晚23点后仍在施工，噪音很大，"
        "老人孩子无法休息。\r\n请尽快派人查看。\r\n\r\n王喆\r\n"
    )
    markup = (
        "<html><body><p>您好：</p>"
        "<p>镕锦路堃园小区东门外的工地每晚23点后仍在施工。</p></body></html>"
    )
    return crlf(
        "From: " + word("王喆", "gbk").replace("gbk", "gb2312") + " <WangZhe@example.cn>",
        HOTLINE,
        "Subject: " + word("关于镕锦路堃园小区", "gbk").replace("gbk", "gb2312"),
        "\t" + word("夜间施工噪音的投诉", "gbk").replace("gbk", "gb2312"),
        "Date: Fri, 20 Nov 2026 09:12:33 +0800",
        "Message-ID: <000001db3c2a$5f1e2b40$1d5a81c0$@example.cn>",
        "MIME-Version: 1.0",
        "Content-Type: multipart/alternative;",
        f'\tboundary="{boundary}"',
        "X-Mailer: Microsoft Outlook 16.0",
        "Thread-Index: AdtcKl8eK0AdWoHAfUN3ryKnZ5oTQg==",
        "Content-Language: zh-cn",
        "",
        "This is a multipart message in MIME format.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain;",
        '\tcharset="gb2312"',
        "Content-Transfer-Encoding: base64",
        "",
        b64(text.encode("gbk")),
        "",
        f"--{boundary}",
        "Content-Type: text/html;",
        '\tcharset="gb2312"',
        "Content-Transfer-Encoding: base64",
        "",
        b64(markup.encode("gbk")),
        "",
        f"--{boundary}--",
    )


def foxmail_gbk_qp_alternative() -> bytes:
    boundary = "----=_NextPart_673D4A26_0B2C6F48_5E3A1B2C"
    text = (
        "您好，\n\n幸福里小区3号楼旁边的垃圾桶已经三天没有清运了，气味很大，"
        "影响居民出行，希望环卫部门尽快处理。\n\n赵磊\n"
    )
    markup = (
        '<html><head><meta http-equiv="content-type" content="text/html; charset=GBK"></head>'
        "<body><div>您好，</div><div><br></div><div>幸福里小区3号楼旁边的垃圾桶已经三天"
        "没有清运了。</div></body></html>"
    )
    return crlf(
        "Date: Fri, 20 Nov 2026 10:31:02 +0800",
        'From: "' + word("赵磊", "gbk") + '" <zhaolei@qq.com>',
        'To: "' + word("12345热线", "gbk") + '" <12345@hotline.local>',
        "Subject: " + word("小区垃圾清运不及时", "gbk"),
        "X-Priority: 3",
        "X-Has-Attach: no",
        "X-Mailer: Foxmail 7.2.25.254[cn]",
        "Mime-Version: 1.0",
        "Message-ID: <2026112010310128742311@qq.com>",
        "Content-Type: multipart/alternative;",
        f'\tboundary="{boundary}"',
        "",
        "This is a multi-part message in MIME format.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain;",
        '\tcharset="GBK"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        qp(text, "gbk"),
        f"--{boundary}",
        "Content-Type: text/html;",
        '\tcharset="GBK"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        qp(markup, "gbk"),
        "",
        f"--{boundary}--",
    )


def webmail_utf8_html_only() -> bytes:
    """HTML only, and a subject split inside a character across two encoded words."""
    subject = "公交站台的电子屏坏了一个月".encode()
    cut = 7  # inside the third character: each word alone is invalid UTF-8
    words = [base64.b64encode(part).decode() for part in (subject[:cut], subject[cut:])]
    markup = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8">\n'
        "<title>投诉</title>\n"
        '<style type="text/css">p { margin: 0; } .sig { color: #999; }</style>\n'
        '<script>var tracking = "不应出现";</script>\n'
        "</head><body>\n"
        '<div style="line-height:1.7;font-size:14px">\n'
        "<p>您好！</p>\n"
        "<p>人民路&amp;解放路路口公交站台的电子屏已经坏了一个月，<br>\n"
        "显示的到站时间全是&nbsp;&nbsp;“--”。</p>\n"
        "<p>请&lt;尽快&gt;维修，谢谢。</p>\n"
        "<div><br></div>\n"
        '<div class="sig">陈静</div>\n'
        "</div>\n"
        "</body></html>\n"
    )
    return crlf(
        "Return-Path: <chen.jing@163.com>",
        "Date: Fri, 20 Nov 2026 11:02:45 +0800 (CST)",
        "From: " + word("陈静", "UTF-8") + " <Chen.Jing@163.com>",
        HOTLINE,
        f"Subject: =?UTF-8?B?{words[0]}?= =?UTF-8?B?{words[1]}?=",
        "Message-ID: <6b1f2c3d.4e5f.19a4c2d7e11.Coremail.chen.jing@163.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/html; charset=UTF-8",
        "Content-Transfer-Encoding: base64",
        "",
        b64(markup.encode()),
    )


def big5_traditional() -> bytes:
    """Labelled big5, but 邨 and 咗 exist only in Big5-HKSCS (Hong Kong)."""
    text = (
        "你好，\n\n我住在彩虹邨，升降機上個月壞咗三次，維修公司成日話冇零件。\n"
        "請派人跟進。\n\n陳大文\n"
    )
    return crlf(
        "From: " + word("陳大文", "big5hkscs").replace("big5hkscs", "big5"),
        "  <chantaiman@netvigator.com>",
        HOTLINE,
        "Subject: " + word("屋邨升降機經常故障", "big5hkscs").replace("big5hkscs", "big5"),
        "Date: Fri, 20 Nov 2026 12:05:01 +0800",
        "Message-ID: <20261120120501.4F2A1C@mail.netvigator.com>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="big5"',
        "Content-Transfer-Encoding: 8bit",
        "",
        text.replace("\n", "\r\n").encode("big5hkscs"),
    )


def hz_gb2312() -> bytes:
    """HZ (RFC 1843): 7-bit GB2312 between ~{ and ~}, still sent by old campus mailers."""
    text = "学院路南段的路灯从上周起一直不亮，晚上骑车很危险。\n\n刘洋\n"
    return crlf(
        'From: "Liu Yang" <liuyang@example.edu.cn>',
        HOTLINE,
        "Subject: " + word("路灯不亮", "hz").replace("hz", "HZ-GB-2312"),
        "Date: Fri, 20 Nov 2026 13:20:00 +0800",
        "Message-ID: <Pine.LNX.4.64.2611201320.12345@example.edu.cn>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=HZ-GB-2312",
        "Content-Transfer-Encoding: 7bit",
        "",
        text.encode("hz").replace(b"\n", b"\r\n"),
    )


def lying_latin1_is_utf8() -> bytes:
    """A phone app that labels everything iso-8859-1 and sends UTF-8 bytes."""
    name = word("孙悦", "utf-8", "Q").replace("utf-8", "iso-8859-1")
    subject = word("地铁站扶梯停运", "utf-8", "Q").replace("utf-8", "ISO-8859-1")
    return crlf(
        f"From: {name} <sunyue@example.com>",
        HOTLINE,
        f"Subject: {subject}",
        "Date: Fri, 20 Nov 2026 14:00:00 +0800",
        "Message-ID: <lying-latin1.1@example.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Transfer-Encoding: 8bit",
        "",
        "地铁2号线东站C出口的自动扶梯停运两周了。".encode(),
    )


def lying_utf8_is_gbk() -> bytes:
    """A form mailer that declares utf-8 around GBK bytes it got from the browser."""
    return crlf(
        "From: " + word("吴芳", "gbk").replace("gbk", "utf-8") + " <wufang@example.org>",
        HOTLINE,
        "Subject: " + word("菜市场占道经营", "gbk").replace("gbk", "utf-8"),
        "Date: Fri, 20 Nov 2026 14:10:00 +0800",
        "Message-ID: <lying-utf8.2@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        b64("东门菜市场的摊贩把摊位摆到了马路上，早高峰堵车严重。\r\n".encode("gbk")),
    )


def raw_gbk_no_charset() -> bytes:
    """An old script mailer: raw GBK in From and Subject, no charset anywhere, and a subject
    that mixes raw 8-bit words with an encoded word."""
    return crlf(
        b"From: " + "周杰".encode("gbk") + b" <zhoujie@example.net>",
        HOTLINE,
        b"Subject: " + "[业主投诉]".encode("gbk") + b" " + word("噪音扰民", "gbk").encode(),
        "Date: Fri, 20 Nov 2026 14:20:00 +0800",
        "Message-ID: <20261120142000.GA1234@example.net>",
        "Content-Type: text/plain",
        "Content-Transfer-Encoding: 8bit",
        "",
        "楼下KTV每天营业到凌晨三点，低音炮震得整栋楼都能听见。\r\n".encode("gbk"),
    )


def reply_quoted_signature() -> bytes:
    """A bottom-posted reply: the quote first, then the citizen's words, then a signature."""
    text = (
        "在 2026年11月20日 周五 10:00，12345热线 <12345@hotline.local> 写道：\r\n"
        "> 您好，您反映的问题已转交区城管局处理，工单号 HL202611200001。\r\n"
        "> 如有疑问请回复本邮件。\r\n"
        "\r\n"
        "问题还没有解决，昨晚工地又施工到凌晨一点。  \r\n"
        "请再催一下。\r\n"
        "\r\n"
        "-- \r\n"
        "李四\r\n"
        "手机：138 0000 0000\r\n"
    )
    return crlf(
        "Message-ID: <5d2c1a7e-8f3b-4c2d-9e1f-0a1b2c3d4e5f@example.com>",
        "Date: Sat, 21 Nov 2026 08:15:00 +0800",
        "MIME-Version: 1.0",
        "User-Agent: Mozilla Thunderbird",
        "Subject: Re: " + word("工地夜间施工", "UTF-8"),
        "In-Reply-To: <HL202611200001.reply@hotline.local>",
        "References: <HL202611200001.reply@hotline.local>",
        HOTLINE,
        "From: " + word("李四", "UTF-8") + " <lisi@example.com>",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        text.encode(),
    )


def related_inline_and_attachments() -> bytes:
    """Gmail-style RFC 2231 filename, Outlook-style RFC 2047 filename, a cid: image."""
    mixed, related, alternative = "mixed_0001", "related_0002", "alternative_0003"
    cid = "image001.png@01DB3C6D.6D4A5A40"
    pdf_name = quote("投诉材料.pdf", safe="")
    jpg_name = word("现场照片.jpg", "gbk").replace("gbk", "gb2312")
    return crlf(
        "From: " + word("郑洁", "utf-8") + " <zhengjie@example.com>",
        HOTLINE,
        "Subject: " + word("共享单车堆满人行道（附照片）", "utf-8"),
        "Date: Fri, 20 Nov 2026 15:00:00 +0800",
        "Message-ID: <CAF=k3qY+related-9@mail.example.com>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{mixed}"',
        "",
        f"--{mixed}",
        f'Content-Type: multipart/related; boundary="{related}"; type="multipart/alternative"',
        "",
        f"--{related}",
        f'Content-Type: multipart/alternative; boundary="{alternative}"',
        "",
        f"--{alternative}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        b64("地铁口的共享单车把人行道堵死了，见附件照片和材料。\r\n".encode()),
        f"--{alternative}",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        b64(f'<p>地铁口的共享单车把人行道堵死了。</p><img src="cid:{cid}">'.encode()),
        f"--{alternative}--",
        "",
        f"--{related}",
        "Content-Type: image/png",
        "Content-Transfer-Encoding: base64",
        f"Content-ID: <{cid}>",
        "Content-Disposition: inline",
        "",
        b64(PNG),
        f"--{related}--",
        "",
        f"--{mixed}",
        f"Content-Type: application/pdf; name*=utf-8''{pdf_name}",
        f"Content-Disposition: attachment; filename*=utf-8''{pdf_name}",
        "Content-Transfer-Encoding: base64",
        "",
        b64(PDF),
        f"--{mixed}",
        f'Content-Type: image/jpeg; name="{jpg_name}"',
        f'Content-Disposition: attachment; filename="{jpg_name}"',
        "Content-Transfer-Encoding: base64",
        "",
        b64(JPEG),
        f"--{mixed}--",
    )


def no_message_id() -> bytes:
    """No Message-ID, and base64 whose padding the sender dropped."""
    body = "小区门口的井盖丢了，很危险！\r\n".encode()
    encoded = base64.b64encode(body)
    assert encoded.endswith(b"="), "the body must need padding for this payload to test it"
    return crlf(
        "From: Zhang Wei <zhangwei@example.com>",
        HOTLINE,
        "Subject: " + word("井盖丢失", "utf-8"),
        "Date: Fri, 20 Nov 2026 16:00:00 +0800",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        encoded.rstrip(b"="),
    )


def forwarded_rfc822() -> bytes:
    """Forwarded as an attachment (mutt style): the property notice is a message/rfc822."""
    inner = crlf(
        "From: " + word("阳光物业", "gbk") + " <notice@sunshine-pm.example>",
        "To: residents@sunshine-pm.example",
        "Subject: " + word("停水通知", "gbk"),
        "Date: Mon, 16 Nov 2026 09:00:00 +0800",
        "Message-ID: <notice-20261116@sunshine-pm.example>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="gbk"',
        "Content-Transfer-Encoding: base64",
        "",
        b64("因管道维修，11月17日至19日全天停水。\r\n".encode("gbk")),
    )
    boundary = "fwd-boundary-42"
    return crlf(
        "From: " + word("冯军", "utf-8") + " <fengjun@example.com>",
        HOTLINE,
        "Subject: Fwd: " + word("停水通知", "utf-8"),
        "Date: Fri, 20 Nov 2026 17:00:00 +0800",
        "Message-ID: <20261120170000.fwd@example.com>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Disposition: inline",
        "Content-Transfer-Encoding: 8bit",
        "",
        "物业停水三天没有提前告知，请核实。".encode(),
        "",
        f"--{boundary}",
        "Content-Type: message/rfc822",
        "Content-Disposition: inline",
        "",
        inner,
        f"--{boundary}--",
    )


def utf16_and_text_attachment() -> bytes:
    """A Windows tool's UTF-16 body (with BOM), and a second text/plain that is a file."""
    boundary = "utf16-boundary"
    note = "情况说明.txt"
    return crlf(
        "From: report-tool@example.gov.cn",
        HOTLINE,
        "Subject: " + word("情况说明", "utf-8"),
        "Date: Fri, 20 Nov 2026 18:00:00 +0800",
        "Message-ID: <utf16.7@example.gov.cn>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-16",
        "Content-Transfer-Encoding: base64",
        "",
        b64("请查收附件中的情况说明。\r\n".encode("utf-16")),
        f"--{boundary}",
        f'Content-Type: text/plain; charset=utf-8; name="{word(note, "utf-8")}"',
        "Content-Transfer-Encoding: base64",
        "",
        b64("11月20日晚，小区东门施工至凌晨。\r\n".encode()),
        f"--{boundary}--",
    )


def filename_edge_cases() -> bytes:
    """RFC 2231 continuations in a gb2312 label holding a GBK-only character, raw GBK bytes
    in a filename, a path in a filename, `name=` only, and no name at all."""
    encoded = quote("堃园小区业主联名信.doc".encode("gbk"), safe="")
    first, second = encoded[:30], encoded[30:]
    boundary = "edge-boundary"

    def part(headers: list[Line], data: bytes) -> list[Line]:
        return [f"--{boundary}", *headers, "Content-Transfer-Encoding: base64", "", b64(data)]

    return crlf(
        "From: <owners@example.com>",
        HOTLINE,
        "Subject: " + word("业主联名信", "utf-8"),
        "Message-ID: <edge.8@example.com>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        *part(["Content-Type: text/plain; charset=utf-8"], "联名信见附件。".encode()),
        *part(
            [
                "Content-Type: application/msword",
                "Content-Disposition: attachment;",
                f"\tfilename*0*=gb2312''{first};",
                f"\tfilename*1*={second}",
            ],
            b"DOC-1" * 10,
        ),
        *part(
            [
                "Content-Type: image/png",
                b'Content-Disposition: attachment; filename="' + "签名页.png".encode("gbk") + b'"',
            ],
            PNG,
        ),
        *part(
            [
                "Content-Type: application/octet-stream",
                'Content-Disposition: attachment; filename="../../etc/passwd"',
            ],
            b"root:x:0:0\n",
        ),
        *part(
            [f'Content-Type: application/vnd.ms-excel; name="{word("名单.xls", "utf-8", "Q")}"'],
            b"XLS" * 7,
        ),
        *part(["Content-Type: application/octet-stream"], b"\x00\x01\x02\x03"),
        f"--{boundary}--",
    )


BUILDERS: list[Callable[[], bytes]] = [
    outlook_gb2312_gbk_chars,
    foxmail_gbk_qp_alternative,
    webmail_utf8_html_only,
    big5_traditional,
    hz_gb2312,
    lying_latin1_is_utf8,
    lying_utf8_is_gbk,
    raw_gbk_no_charset,
    reply_quoted_signature,
    related_inline_and_attachments,
    no_message_id,
    forwarded_rfc822,
    utf16_and_text_attachment,
    filename_edge_cases,
]


def main() -> None:
    for build in BUILDERS:
        (HERE / f"{build.__name__}.eml").write_bytes(build())


if __name__ == "__main__":
    main()
