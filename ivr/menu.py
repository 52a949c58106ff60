"""config.yaml's `ivr:` section: the menu, its prompts, the agent queue and the voicemail."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# The letter categories (same codes as the core's; the core imports this module, not back).
Category = Literal["complaint", "help", "suggestion", "inquiry", "report", "opinion", "other"]
CATEGORIES: tuple[Category, ...] = get_args(Category)
DTMF_KEYS = "0123456789*#"


def _dtmf_key(value: object) -> object:
    # YAML reads an unquoted `9:` or `agent_digit: 9` as an int.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not (isinstance(value, str) and len(value) == 1 and value in DTMF_KEYS):
        raise ValueError(f"{value!r} is not one DTMF key ({DTMF_KEYS})")
    return value


DtmfKey = Annotated[str, BeforeValidator(_dtmf_key)]


def _not_a_number(value: object) -> object:
    # YAML 1.1 reads an unquoted 20:00 as the sexagesimal int 1200, which pydantic would
    # take as 00:20.
    if isinstance(value, int | float):
        raise ValueError(f'{value!r} is not a time of day; quote it in YAML: "20:00"')
    return value


def _naive(value: time) -> time:
    # The local clock the channel passes has no offset to compare with.
    if value.tzinfo is not None:
        raise ValueError("a working-hours time is wall-clock time, without an offset")
    return value


WallTime = Annotated[time, BeforeValidator(_not_a_number), AfterValidator(_naive)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prompts(Section):
    """The text of each prompt; channels play the recording named after the field."""

    welcome: str = "您好，这里是12345市民热线。"
    menu: str = (
        "投诉请按1，求助请按2，建议请按3，咨询请按4，举报请按5，意见请按6，其它请按7，"
        "人工服务请按9，重听请按0。"
    )
    invalid: str = "您的输入有误，请重新选择。"
    no_input: str = "对不起，没有收到您的按键。"
    record: str = "请在提示音后留言，留言完毕请按井号键。"
    report_notice: str = "举报需提供真实身份信息，请在留言中说明您的姓名和联系方式。"
    thanks: str = "您的留言已记录，我们会尽快处理。再见。"
    transferring: str = "正在为您转接人工服务，请稍候。"
    agent_unavailable: str = "人工服务暂时无法接通，请在提示音后留言。"
    busy: str = "线路繁忙，请稍后再拨。"
    goodbye: str = "感谢您的来电，再见。"
    # After a voicemail: the letter's tracking number (受理编号) and code (查询码), read one
    # digit per prompt and said twice; or, when the letter is not stored in time, that the
    # number follows.
    stored: str = "您的留言已记录。"
    number_is: str = "您的受理编号是"
    code_is: str = "查询码是"
    number_again: str = "再重复一遍。"
    write_down: str = "请记下，凭编号和查询码可以查询办理进度。"
    # An SMS reaches only a mobile caller (a landline gets none): the prompt says so.
    number_later: str = (
        "您的留言已收到。用手机拨打的，受理编号将以短信发送给您；您也可以稍后再拨12345查询。"
    )
    # 1 as 幺, as on Chinese telephones; X, a tracking number's check character as on an
    # ID card, as the letter's name.
    digit_0: str = "零"
    digit_1: str = "幺"
    digit_2: str = "二"
    digit_3: str = "三"
    digit_4: str = "四"
    digit_5: str = "五"
    digit_6: str = "六"
    digit_7: str = "七"
    digit_8: str = "八"
    digit_9: str = "九"
    digit_x: str = "艾克斯"
    # Waiting in the call queue for a person: the hold prompt between position
    # announcements (您前面还有N位, counted as spoken, not digit by digit), and what
    # follows the maximum wait.
    queue_hold: str = "您的来电正在排队，请不要挂机。"
    ahead_1: str = "您前面还有一位。"
    ahead_2: str = "您前面还有两位。"
    ahead_3: str = "您前面还有三位。"
    ahead_4: str = "您前面还有四位。"
    ahead_5: str = "您前面还有五位。"
    ahead_6: str = "您前面还有六位。"
    ahead_7: str = "您前面还有七位。"
    ahead_8: str = "您前面还有八位。"
    ahead_9: str = "您前面还有九位。"
    ahead_many: str = "您前面还有十位以上。"
    queue_choice: str = "目前话务繁忙。留言请按1，需要我们给您回电请按2。"
    queue_callback: str = "已为您登记回电，我们会尽快给您回电。再见。"
    # Before a seat is rung, when acd.record_calls is on.
    recording_notice: str = "为了提高服务质量，您的通话可能会被录音。"


PromptName = Literal[
    "welcome",
    "menu",
    "invalid",
    "no_input",
    "record",
    "report_notice",
    "thanks",
    "transferring",
    "agent_unavailable",
    "busy",
    "goodbye",
    "stored",
    "number_is",
    "code_is",
    "number_again",
    "write_down",
    "number_later",
    "digit_0",
    "digit_1",
    "digit_2",
    "digit_3",
    "digit_4",
    "digit_5",
    "digit_6",
    "digit_7",
    "digit_8",
    "digit_9",
    "digit_x",
    "queue_hold",
    "ahead_1",
    "ahead_2",
    "ahead_3",
    "ahead_4",
    "ahead_5",
    "ahead_6",
    "ahead_7",
    "ahead_8",
    "ahead_9",
    "ahead_many",
    "queue_choice",
    "queue_callback",
    "recording_notice",
]


class WorkingHours(Section):
    """When agents answer. A window whose end is not after its start runs past midnight
    and belongs to the day it starts on; 00:00–00:00 is around the clock."""

    start: WallTime = time(8, 0)
    end: WallTime = time(20, 0)
    days: list[Annotated[int, Field(ge=0, le=6)]] = [0, 1, 2, 3, 4, 5, 6]  # 0 = Monday

    def covers(self, local: datetime) -> bool:
        now, day = local.time(), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        if now >= self.start:
            return day in self.days
        return now < self.end and (day - 1) % 7 in self.days


class AgentConfig(Section):
    # SIP URI or phone number of the call centre queue; None: no agents, the agent key
    # leads to voicemail.
    uri: str | None = None
    answer_timeout_seconds: float = Field(default=20, gt=0)
    # The hotline's own seats answer: callers who choose a person wait in the city-wide
    # call queue (config.yaml's acd: section, docs/acd.md) instead of being sent to uri.
    queue: bool = False
    # The SIP user a call comes in for to reach the queue at once, without the menu: what
    # Twilio dials for its callers (channels.twilio.queue_uri).
    queue_entry: str = Field(default="queue", pattern=r"^[A-Za-z0-9._-]{1,32}$")
    # Numbers dialled (the Request-URI's user) whose callers go straight to the queue in a
    # priority class of acd.priorities, e.g. {"12349": elderly}: a line for the elderly.
    lines: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")], str] = {}
    working_hours: WorkingHours = WorkingHours()

    def available(self, local: datetime) -> bool:
        """Whether a transfer is worth trying at ``local``, the hotline's wall-clock time."""
        return (self.queue or self.uri is not None) and self.working_hours.covers(local)


class VoicemailConfig(Section):
    max_seconds: float = Field(default=180, gt=0)
    silence_seconds: float = Field(default=5, gt=0)
    # A shorter recording is a hang-up after the tone, not a letter.
    min_seconds: float = Field(default=2, ge=0)
    finish_key: DtmfKey = "#"
    # How long a caller who left a message waits for its letter's tracking number; a store
    # slower than this (the database down: the message is spooled) is told the number
    # follows by SMS, while the letter is still stored.
    number_timeout_seconds: float = Field(default=4, gt=0)

    @model_validator(mode="after")
    def _min_below_max(self) -> VoicemailConfig:
        if self.min_seconds >= self.max_seconds:
            raise ValueError("min_seconds must be below max_seconds")
        return self


class IvrConfig(Section):
    # GB/T 33358 advises against menus on 12345: "direct" greets and transfers to an agent,
    # with voicemail when none answers.
    mode: Literal["menu", "direct"] = "menu"
    prompts: Prompts = Prompts()
    categories: dict[DtmfKey, Category] = {
        "1": "complaint",
        "2": "help",
        "3": "suggestion",
        "4": "inquiry",
        "5": "report",
        "6": "opinion",
        "7": "other",
    }
    agent_digit: DtmfKey = "9"
    repeat_digit: DtmfKey = "0"
    menu_timeout_seconds: float = Field(default=6, gt=0)
    # How often the menu is offered again after silence, and after a wrong key; one more
    # and the caller is taken to voicemail as "other". Capped to keep call states short.
    no_input_repeats: int = Field(default=2, ge=0, le=9)
    invalid_retries: int = Field(default=3, ge=0, le=9)
    agent: AgentConfig = AgentConfig()
    voicemail: VoicemailConfig = VoicemailConfig()

    @model_validator(mode="after")
    def _keys_do_not_collide(self) -> IvrConfig:
        if self.agent_digit == self.repeat_digit:
            raise ValueError(f"agent_digit and repeat_digit are both {self.agent_digit!r}")
        for reserved in ("agent_digit", "repeat_digit"):
            key = getattr(self, reserved)
            if key in self.categories:
                raise ValueError(f"categories uses {key!r}, which is the {reserved}")
        return self
