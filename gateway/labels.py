"""The Chinese words citizens and staff read for the system's codes (one place for all pages,
reports and APIs)."""

from __future__ import annotations

CHANNEL_LABELS = {"phone": "电话", "sms": "短信", "email": "电子邮件", "fax": "传真", "web": "网站"}
CATEGORY_LABELS = {
    "complaint": "投诉",
    "help": "求助",
    "suggestion": "建议",
    "inquiry": "咨询",
    "report": "举报",
    "opinion": "意见",
    "other": "其他",
}
UNCLASSIFIED_LABEL = "未分类"
STATUS_LABELS = {
    "received": "已收件",
    "triage": "待分办",
    "rejected": "不予受理",
    "duplicate": "重复件",
    "escalated": "呈办中",
    "assigned": "已交办",
    "signed": "已签收",
    "promised": "已承诺",
    "replied": "已答复",
    "closed": "已办结",
}
