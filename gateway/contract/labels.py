"""The Chinese words citizens and staff read for the system's codes (one place for all pages,
reports and APIs)."""

from __future__ import annotations

CHANNEL_LABELS = {
    "phone": "电话",
    "sms": "短信",
    "email": "电子邮件",
    "fax": "传真",
    "web": "网站",
    "webcall": "网上呼叫",
}
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
    "visit_answer": "回访答复",
}
# Background work by lane (gateway.contract.kinds.LANES), as the dashboard shows it.
LANE_LABELS = {
    "route": "分办（分类、筛查、并单、交办）",
    "notify": "回执、答复与催办通知（邮件）",
    "sms": "回执、答复与催办短信",
    "webhooks": "对接系统推送",
    "media": "彩信图片下载",
    "ocr": "传真文字识别",
    "transcribe": "电话留言转写",
}
# A voicemail or fax waiting for the words its job reads (letters.text_pending).
AWAITING_TEXT_LABELS = {"transcription": "待转写", "ocr": "待识别"}
REJECTION_LABELS = {
    "empty": "内容不完整",
    "malicious": "恶意来信",
    "advertising": "广告信息",
    "judicial": "涉诉涉法事项",
    "unidentified": "举报未留真实身份",
    "duplicate": "重复来信",
}
# The history of a letter as staff read it (events table kinds).
EVENT_LABELS = {
    "received": "收件",
    "classified": "自动分类",
    "duplicate": "并单",
    "triage": "待分办",
    "rejected": "不予受理",
    "assigned": "交办",
    "escalated": "呈办",
    "instructed": "领导批示",
    "reclassified": "更改类别",
    "recorded": "坐席记录来电",
    "attached": "附加文件",
    "recording_deleted": "通话录音到期删除",
    "recording_played": "调听通话录音",
    "call_handed_over": "转入人工排队",
    "signed": "签收",
    "replied": "答复",
    "opinion": "会办意见",
    "returned": "退件",
    "extension_requested": "申请延期",
    "extension_decided": "延期审批",
    "forced": "强制办理",
    "visited": "回访",
    "reopened": "重新办理",
    "visit_asked": "发送回访",
    "visit_answer": "回访答复",
    "visit_noted": "回访留言（待人工回访）",
    "visit_unanswered": "回访未答复（转人工回访）",
    "warned": "临期预警",
    "urged": "催办",
    "supervised": "督办",
    "transcribed": "语音转写",
    "transcribe_failed": "语音转写失败",
    "ocr_done": "传真文字识别",
    "ocr_failed": "传真文字识别失败",
    "text_unavailable": "无法转写或识别，按已知信息分办",
    "media_fetched": "下载附件",
    "media_fetch_failed": "附件下载失败",
    "notified": "发送通知",
    "notify_failed": "通知发送失败",
    "delivery_report": "送达状态报告",
    "pii_read": "读取来信人信息",
    "pii.revealed": "查看来信人信息",
}
