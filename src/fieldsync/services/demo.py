"""The 长治市 demo: users, devices, a few hundred hazard, disaster and accident reports with
photos, some of them reviewed, rectified and closed, some overdue — loaded through the same
services the API uses.

Idempotent. Every report id (and every disaster's incident id) is a ``uuid5`` of its place in
the plan, users are found by username and devices by their demo label, so a second run finds
everything present and changes nothing. Each report is loaded in one transaction together with
its review history, so an interrupted run leaves whole reports and the next run adds the rest.

History is replayed, not faked: a report is submitted by its inspector's enrolled device at the
time the device would have sent it (``observed_at`` plus an offline delay), then every workflow
action goes through ``services.workflow.apply_transition`` at its own past time, so versions,
audit events, deadlines and overdue flags are what production would hold. Nothing is dated after
``now``. Photos are small generated JPEGs (``imaging.synthetic``) stored with
``services.media.store_media`` through the spool, like an upload; their derivatives are rendered
by the server's background workers once it runs.

Reports are decoded by the caller's ``decode`` (the API's wire decoder, passed in by the
composition root), so the demo's reports have exactly the canonical form — and content hash — a
device sending the same JSON would produce.

Every demo user shares one password, hashed once (argon2 per user would add up to seconds and buy
nothing for accounts whose password is printed on the screen), and is inserted with the same
query ``services.identity.create_user`` uses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import asyncpg

from fieldsync import errors
from fieldsync.db import demo as q
from fieldsync.db import identity as identity_q
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal, Role
from fieldsync.domain.reports import (
    MediaReference,
    ReportSubmission,
    credit_code_check_char,
)
from fieldsync.domain.timeframes import REPORTING_TZ
from fieldsync.imaging.synthetic import field_photo
from fieldsync.ports import MediaStore
from fieldsync.services import identity, media, reports, workflow
from fieldsync.storage.spool import Spool

DEMO_PASSWORD = "changzhi-demo-2026"
DEVICE_LABEL = "长治演示终端"
NAMESPACE = uuid.UUID("6d1f3c52-4e0b-5b7e-9a51-140400000000")
CITY = "140400"
ENROLLED_BEFORE = dt.timedelta(days=600)

Decode = Callable[[uuid.UUID, dict[str, Any]], ReportSubmission]
Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True, slots=True)
class County:
    code: str
    name: str
    slug: str
    short: str  # as enterprises name themselves (沁县 firms call themselves 沁州)
    lat: float
    lon: float


COUNTIES = (
    County("140403", "潞州区", "luzhou", "潞州", 36.20, 113.12),
    County("140404", "上党区", "shangdang", "上党", 36.05, 113.05),
    County("140405", "屯留区", "tunliu", "屯留", 36.32, 112.89),
    County("140406", "潞城区", "lucheng", "潞城", 36.33, 113.23),
    County("140423", "襄垣县", "xiangyuan", "襄垣", 36.53, 113.05),
    County("140425", "平顺县", "pingshun", "平顺", 36.20, 113.44),
    County("140426", "黎城县", "licheng", "黎城", 36.50, 113.39),
    County("140427", "壶关县", "huguan", "壶关", 36.11, 113.21),
    County("140428", "长子县", "zhangzi", "长子", 36.12, 112.88),
    County("140429", "武乡县", "wuxiang", "武乡", 36.84, 112.86),
    County("140430", "沁县", "qinxian", "沁州", 36.76, 112.70),
    County("140431", "沁源县", "qinyuan", "沁源", 36.50, 112.34),
)

# --- realistic content ----------------------------------------------------------------------------

_FIRM_WORDS = ("鑫源", "华晋", "宏达", "兴盛", "永安", "恒通", "金鼎", "瑞丰", "晋阳", "太行", "通达", "利民")
_FIRM_SUFFIX = {
    "coal_mine": "煤业有限公司",
    "metal_nonmetal_mine": "矿业有限公司",
    "tailings_pond": "选矿有限公司",
    "hazardous_chemicals": "化工有限公司",
    "fireworks": "烟花爆竹批发有限公司",
    "metallurgy": "钢铁有限公司",
    "industry_trade": "机械制造有限公司",
    "fire_safety": "商贸城有限公司",
    "gas": "燃气有限公司",
    "construction": "建筑工程有限公司",
    "road_transport": "物流运输有限公司",
    "other": "农产品加工有限公司",
}
_HAZARDS: dict[str, tuple[tuple[str, str], ...]] = {
    "coal_mine": (
        ("采煤工作面上隅角瓦斯浓度超限", "检查发现采煤工作面上隅角瓦斯浓度达1.2%，未按规定停止作业、撤出人员。"),
        ("主斜井带式输送机跑偏保护失效", "主斜井带式输送机跑偏、堆煤保护未接入，现场试验不动作。"),
        ("掘进工作面局部通风机三专两闭锁不完善", "局部通风机未实现专用变压器、专用开关、专用线路，存在无计划停风。"),
        ("老空区探放水措施未落实", "工作面周边存在老空积水区，未按“预测预报、有掘必探”要求探放水。"),
    ),
    "metal_nonmetal_mine": (
        ("井下爆破器材库超量储存", "井下爆破器材库储存炸药超过设计容量，防爆门未关闭。"),
        ("地下采空区未及时充填", "采空区未按设计要求充填处理，顶板存在冒落风险。"),
    ),
    "tailings_pond": (
        ("尾矿库干滩长度不足", "尾矿库干滩长度低于设计最小值，排洪井口部分堵塞。"),
        ("尾矿坝下游坡脚渗水", "初期坝下游坡脚发现渗水点，浸润线偏高，未加密观测。"),
    ),
    "hazardous_chemicals": (
        ("储罐区可燃气体报警仪失效", "甲类储罐区可燃气体检测报警仪未定期检定，两处探头无响应。"),
        ("危险化工工艺未实现自动化控制", "涉及硝化工艺的装置未设置自动化控制系统和紧急停车系统。"),
        ("罐区动火作业未办理作业票", "罐区检修动火作业未办理特殊作业票证，现场无专人监护。"),
    ),
    "fireworks": (
        ("仓库超核定药量储存", "批发仓库实际储存量超过核定药量，不同危险等级产品混存。"),
        ("危险品仓库防雷检测过期", "危险品仓库防雷设施检测报告已过有效期，接地电阻未复测。"),
    ),
    "metallurgy": (
        ("高炉煤气区域未设固定式报警仪", "高炉炉顶煤气区域未设置固定式一氧化碳检测报警装置。"),
        ("吊运铁水区域下方设有休息室", "吊运铁水、熔渣的起重机运行区域下方设置有操作室和休息室。"),
    ),
    "industry_trade": (
        ("粉尘涉爆除尘系统未设泄爆装置", "铝镁粉尘除尘系统未按规定设置泄爆、隔爆装置。"),
        ("有限空间作业前未进行气体检测", "污水池有限空间作业前未检测氧含量和有毒气体，未配备救援装备。"),
    ),
    "fire_safety": (
        ("安全出口和疏散通道堵塞", "商场二层安全出口被货物堵塞，疏散指示标志损坏。"),
        ("自动喷水灭火系统处于关闭状态", "报警阀组信号蝶阀关闭，消防控制室值班人员未持证上岗。"),
    ),
    "gas": (
        ("中压燃气管道被违章占压", "中压燃气管道上方违章搭建彩钢房，管道无法巡检。"),
        ("餐饮场所未装燃气泄漏报警装置", "餐饮商户使用瓶装液化石油气，未安装可燃气体报警及自动切断装置。"),
    ),
    "construction": (
        ("深基坑支护未按方案监测", "基坑开挖深度超过5米，未按专项方案开展支护结构位移监测。"),
        ("塔式起重机附着装置不符合要求", "塔式起重机附着间距超过使用说明书要求，无验收记录。"),
    ),
    "road_transport": (
        ("危险货物运输车辆动态监控离线", "危险货物运输车辆卫星定位装置离线超过72小时，未及时处置。"),
        ("客运驾驶员超时驾驶", "班线客车驾驶员连续驾驶超过4小时未停车休息。"),
    ),
    "other": (
        ("仓储区电气线路私拉乱接", "仓储区电气线路私拉乱接，未穿管保护，靠近可燃物。"),
    ),
}
_TOWNS = ("城关镇", "东关村", "西营镇", "南垂村", "北岭镇", "上庄村", "河西村", "岭后村")
_DISASTERS: dict[str, tuple[str, str, str]] = {
    # category → (title, description, photo scene)
    "flood": ("{town}强降雨引发洪涝", "受强降雨影响，河道水位上涨，部分村庄进水、农田被淹，已组织转移群众。", "flood"),
    "landslide": ("{town}后山发生滑坡", "连续降雨导致后山发生滑坡，土石方堵塞村道，威胁坡下民房。", "site"),
    "debris_flow": ("{town}沟道发生泥石流", "短时强降雨引发沟道泥石流，冲毁便桥一座，部分耕地被掩埋。", "flood"),
    "forest_grassland_fire": ("{town}林区发生森林火情", "林区发生森林火情，过火面积正在核实，扑火队伍已到达现场。", "fire"),
    "wind_hail": ("{town}遭受风雹灾害", "强对流天气伴有冰雹和大风，玉米、果树受损，部分大棚倒塌。", "field"),
    "drought": ("{town}持续干旱", "持续少雨，部分村庄人畜饮水困难，旱地作物受旱。", "field"),
    "low_temperature": ("{town}遭受低温冷冻", "寒潮降温导致果树花期受冻，设施蔬菜受损。", "snow"),
    "snow": ("{town}暴雪灾害", "暴雪导致道路结冰、部分简易棚舍倒塌。", "snow"),
}
_ACCIDENTS = (
    ("fall_from_height", "发生一起高处坠落事故", "作业人员在无防护的临边作业时坠落。"),
    ("object_strike", "发生一起物体打击事故", "吊装作业区域内物料坠落砸伤作业人员。"),
    ("machinery_injury", "发生一起机械伤害事故", "检修时未停机挂牌，作业人员被卷入设备。"),
    ("roof_fall", "发生一起冒顶片帮事故", "巷道顶板局部冒落，造成人员受伤。"),
)
_FIVE = {
    "measures": "立即停止相关作业，制定整改方案，更换失效装置并组织复查。",
    "contingency_plan": "整改期间设置警戒区域，安排专人值守，发现异常立即撤人。",
}
_PEOPLE = ("王建国", "李志强", "张卫东", "刘海波", "陈晓峰", "杨文军", "赵国庆", "郭振华")


def credit_code(rng: random.Random, county: str) -> str:
    """A unified social credit code (GB 32100) for an enterprise registered in ``county``: a
    GB 11714 organisation code with its own check digit, then the mod-31 check character."""
    body = "".join(rng.choice("0123456789") for _ in range(8))
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    check = 11 - sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11
    first17 = "91" + county + body + {10: "X", 11: "0"}.get(check, str(check))
    last = credit_code_check_char(first17)
    assert last is not None
    return first17 + last


# --- the plan -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Photo:
    seed: int
    role: str
    scene: str
    taken_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    action: str
    actor: str  # "supervisor", "city" or "device"
    at: dt.datetime
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    photo: Photo | None = None  # the 'after' photo of submit_rectification


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    id: uuid.UUID
    county: County
    inspector: int  # 1 or 2
    body: dict[str, Any]  # the report as the device sends it, without media
    photos: tuple[Photo, ...]
    sent_at: dt.datetime
    steps: tuple[Step, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Size:
    hazards_per_county: int = 20
    incidents_per_county: int = 2
    accidents_per_county: int = 1


def _id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts))


def _near(rng: random.Random, county: County) -> dict[str, Any]:
    return {
        "lat": round(county.lat + rng.uniform(-0.12, 0.12), 6),
        "lon": round(county.lon + rng.uniform(-0.12, 0.12), 6),
        "accuracy_m": float(rng.choice((5, 8, 10, 15, 30))),
        "address": f"长治市{county.short}{rng.choice(_TOWNS)}",
    }


def _second(when: dt.datetime) -> dt.datetime:
    return when.replace(microsecond=0)


def _cst(when: dt.datetime) -> str:
    return when.astimezone(REPORTING_TZ).isoformat()


def _rng(*parts: object) -> random.Random:
    """Each item draws from its own generator, so one item's draws never shift another's."""
    return random.Random("fieldsync-demo/" + "/".join(str(p) for p in parts))


def _hazard(county: County, n: int, now: dt.datetime) -> list[Item]:
    rng = _rng(county.code, "hazard", n)
    categories = tuple(_HAZARDS)
    category = categories[(n + int(county.code)) % len(categories)]
    title, description = rng.choice(_HAZARDS[category])
    grade = "major" if rng.random() < 0.2 else "general"
    back = dt.timedelta(days=rng.uniform(1, 150), hours=rng.uniform(0, 24))
    if rng.random() < 0.4:  # last year's inspections, for the year-on-year comparison
        back += dt.timedelta(days=365)
    observed = _second(now - back)
    sent = observed + dt.timedelta(minutes=rng.randrange(5, 360))
    enterprise = {
        "name": f"{county.short}{rng.choice(_FIRM_WORDS)}{_FIRM_SUFFIX[category]}",
        "credit_code": credit_code(rng, county.code),
        "industry": category,
    }
    body = {
        "kind": "hazard", "category": category, "title": title, "description": description,
        "jurisdiction": county.code, "location": _near(rng, county), "observed_at": _cst(observed),
        "severity": "orange" if grade == "major" else rng.choice(("yellow", "blue")),
        "enterprise": enterprise, "grade": grade,
    }
    report_id = _id(county.code, "hazard", n)
    photos = (Photo(rng.randrange(2**31), "before", "site", observed - dt.timedelta(minutes=3)),)
    outcome, steps = _hazard_review(rng, grade, sent, now)
    items = [Item(report_id, county, 1 + n % 2, body, photos, sent, steps)]
    if n == 1 and outcome != "rejected":  # the other inspector reports it again; the supervisor merges
        twin_sent = sent + dt.timedelta(hours=3)
        twin = dict(body, description=description + "（复查时再次发现）")
        items.append(Item(
            _id(county.code, "hazard", n, "duplicate"), county, 2 - n % 2, twin,
            (Photo(rng.randrange(2**31), "before", "site", observed + dt.timedelta(hours=2)),), twin_sent,
            (Step("merge", "supervisor", twin_sent + dt.timedelta(hours=1), {"into": report_id}),),
        ))
    return items


def _hazard_review(
    rng: random.Random, grade: str, sent: dt.datetime, now: dt.datetime
) -> tuple[str, tuple[Step, ...]]:
    """The state a hazard is meant to reach, and a review history towards it with every step in
    the past (a recent report gets only as far as time allows)."""
    plan = rng.choices(
        ("submitted", "needs_info", "rejected", "verified", "rectifying", "overdue", "rectified", "closed"),
        weights=(12, 4, 4, 8, 18, 14, 10, 30),
    )[0]
    verified_at = _second(sent + dt.timedelta(hours=rng.uniform(2, 36)))
    latest = now - dt.timedelta(minutes=30)
    if plan == "submitted" or verified_at > latest:
        return plan, ()
    if plan in ("needs_info", "rejected"):
        note = "请补充隐患部位近景照片" if plan == "needs_info" else "经核实不属于事故隐患"
        action = "request_info" if plan == "needs_info" else "reject"
        return plan, (Step(action, "supervisor", verified_at, {"note": note}),)
    steps = [Step("verify", "supervisor", verified_at)]
    assigned_at = _second(verified_at + dt.timedelta(hours=rng.uniform(4, 72)))
    if plan == "verified" or assigned_at > latest:
        return plan, tuple(steps)
    days = rng.uniform(30, 90) if grade == "major" else rng.uniform(7, 30)
    deadline = assigned_at + dt.timedelta(days=days)
    if plan == "overdue" and deadline >= latest:
        plan = "rectifying"
    if plan == "rectifying" and deadline <= now:
        deadline = now + dt.timedelta(days=rng.uniform(3, 40))  # a longer deadline, still running
    deadline = deadline.replace(second=0, microsecond=0)
    steps.append(Step("assign_rectification", "supervisor", assigned_at, {
        "responsible_person": rng.choice(_PEOPLE), "measures": _FIVE["measures"],
        "funds_cny": float(rng.randrange(5, 500) * 1000), "deadline": deadline,
        "contingency_plan": _FIVE["contingency_plan"],
    }))
    listed = grade == "major" and rng.random() < 0.35
    if listed:  # 挂牌督办 by the city bureau
        listed_at = _second(assigned_at + dt.timedelta(hours=rng.uniform(1, 48)))
        if listed_at < latest:
            steps.append(Step("list_supervision", "city", listed_at, {
                "level": CITY, "deadline": (deadline + dt.timedelta(days=30)).replace(second=0, microsecond=0),
            }))
        else:
            listed = False
    if plan in ("rectifying", "overdue"):
        return plan, tuple(steps)
    on_time = rng.random() < 0.85
    span = (deadline - assigned_at).total_seconds()
    submitted_at = _second(assigned_at + dt.timedelta(
        seconds=span * rng.uniform(0.3, 0.95) if on_time else span + rng.uniform(3600, 10 * 86400)
    ))
    if submitted_at > latest or (listed and submitted_at <= steps[-1].at):
        return plan, tuple(steps)
    photo = Photo(rng.randrange(2**31), "after", "site", submitted_at - dt.timedelta(minutes=10))
    steps.append(Step("submit_rectification", "device", submitted_at, {"note": "已按要求整改完毕，附整改后照片。"},
                      photo=photo))
    accepted_at = _second(submitted_at + dt.timedelta(hours=rng.uniform(12, 120)))
    if plan == "closed" and accepted_at < latest:
        steps.append(Step("accept_rectification", "city" if listed else "supervisor", accepted_at,
                          {"note": "复查验收合格，予以销号。"}))
    return plan, tuple(steps)


def _incident(county: County, n: int, now: dt.datetime) -> list[Item]:
    rng = _rng(county.code, "incident", n)
    category = rng.choice(tuple(_DISASTERS))
    title, description, scene = _DISASTERS[category]
    town = rng.choice(_TOWNS)
    incident_id = _id(county.code, "incident", n)
    back = dt.timedelta(days=rng.uniform(7, 200))  # old enough for the whole chain, final included
    if n == 1 and rng.random() < 0.5:
        back += dt.timedelta(days=365)
    began = _second(now - back)
    where = _near(rng, county)
    scale = rng.uniform(0.5, 3)
    stages = [("initial", dt.timedelta(minutes=20)), ("update", dt.timedelta(hours=8)),
              ("update", dt.timedelta(hours=32)), ("final", dt.timedelta(days=5))]
    items = []
    for index, (stage, after) in enumerate(stages[: 2 + rng.randrange(3)]):
        observed = began + after
        sent = observed + dt.timedelta(minutes=rng.randrange(15, 100 if stage == "initial" else 240))
        grow = scale * (index + 1)
        losses = {
            "affected_people": int(300 * grow), "evacuated_people": int(80 * grow),
            "houses_damaged": int(12 * grow), "houses_collapsed": int(2 * grow),
            "crop_area_ha": round(40 * grow, 1), "direct_loss_cny": float(int(150_000 * grow)),
            "deaths": 0, "missing": 0, "injured": int(grow),
        }
        label = {"initial": "（初报）", "update": f"（续报{index}）", "final": "（核报）"}[stage]
        body = {
            "kind": "disaster", "category": category, "title": title.format(town=town) + label,
            "description": description, "jurisdiction": county.code, "location": where,
            "observed_at": _cst(observed), "severity": "orange" if scale > 2 else "yellow",
            "incident_id": str(incident_id), "stage": stage, "as_of": _cst(observed - dt.timedelta(minutes=10)),
            "losses": losses,
        }
        photos = tuple(Photo(rng.randrange(2**31), "photo", scene, observed - dt.timedelta(minutes=m))
                       for m in range(5, 5 + 10 * rng.randrange(1, 3), 10))
        verified_at = sent + dt.timedelta(minutes=rng.randrange(20, 180))
        steps = (Step("verify", "supervisor", verified_at),) if stage != "final" else ()
        items.append(Item(_id(county.code, "incident", n, stage, index), county, 1, body, photos, sent, steps))
    return items


def _accident(county: County, n: int, now: dt.datetime) -> list[Item]:
    rng = _rng(county.code, "accident", n)
    category, what, description = rng.choice(_ACCIDENTS)
    industry = rng.choice(("coal_mine", "construction", "metallurgy", "industry_trade"))
    name = f"{county.short}{rng.choice(_FIRM_WORDS)}{_FIRM_SUFFIX[industry]}"
    observed = _second(now - dt.timedelta(days=rng.uniform(3, 300)))
    sent = _second(observed + dt.timedelta(hours=rng.uniform(1, 5)))
    deaths = 1 if rng.random() < 0.3 else 0
    body = {
        "kind": "accident", "category": category, "title": name + what, "description": description,
        "jurisdiction": county.code, "location": _near(rng, county), "observed_at": _cst(observed),
        "severity": "red" if deaths else "yellow",
        "enterprise": {"name": name, "credit_code": credit_code(rng, county.code), "industry": industry},
        "deaths": deaths, "injured": rng.randrange(1, 4), "direct_loss_cny": float(rng.randrange(5, 300) * 10_000),
    }
    photos = (Photo(rng.randrange(2**31), "photo", "site", observed + dt.timedelta(minutes=40)),)
    steps = (Step("verify", "supervisor", sent + dt.timedelta(hours=2)),)
    return [Item(_id(county.code, "accident", n), county, 2, body, photos, sent, steps)]


def plan(now: dt.datetime, size: Size = Size()) -> list[Item]:
    """Every demo report, in load order (a merged duplicate after its survivor). The ids depend on
    ``size`` only; ``now`` moves the times, so a later run plans the same reports."""
    items: list[Item] = []
    for county in COUNTIES:
        for n in range(size.hazards_per_county):
            items += _hazard(county, n, now)
        for n in range(size.incidents_per_county):
            items += _incident(county, n, now)
        for n in range(size.accidents_per_county):
            items += _accident(county, n, now)
    return items


# --- loading --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Login:
    username: str
    role: str
    jurisdiction: str
    display_name: str


@dataclasses.dataclass(slots=True)
class Summary:
    password: str
    logins: list[Login]
    users_created: int = 0
    devices_enrolled: int = 0
    reports_created: int = 0
    reports_present: int = 0
    photos_stored: int = 0
    transitions: int = 0


def logins() -> list[Login]:
    """The demo's accounts: the city command centre, then a supervisor and two inspectors per county."""
    accounts = [Login("changzhi.city", Role.SUPERVISOR.value, CITY, "长治市应急管理局指挥中心")]
    for county in COUNTIES:
        accounts += [
            Login(f"{county.slug}.sup", Role.SUPERVISOR.value, county.code, f"{county.name}应急管理局审核员"),
            Login(f"{county.slug}.insp1", Role.INSPECTOR.value, county.code, f"{county.name}检查员一"),
            Login(f"{county.slug}.insp2", Role.INSPECTOR.value, county.code, f"{county.name}检查员二"),
        ]
    return accounts


def _principal(row: asyncpg.Record, device_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        user_id=row["id"], username=row["username"], role=Role(row["role"]), jurisdiction=row["jurisdiction"],
        jurisdiction_path=row["jurisdiction_path"], device_id=device_id,
    )


class _Loader:
    def __init__(self, conn: asyncpg.Connection, *, store: MediaStore, spool: Spool, decode: Decode,
                 max_pixels: int, summary: Summary) -> None:
        self.conn, self.store, self.spool, self.decode = conn, store, spool, decode
        self.max_pixels = max_pixels
        self.summary = summary
        self.users: dict[str, Principal] = {}
        self.devices: dict[str, Principal] = {}

    async def ensure_users(self, password: str, progress: Progress) -> None:
        accounts = logins()
        password_hash: str | None = None
        for done, login in enumerate(accounts, 1):
            row = await identity_q.get_user_by_username(self.conn, login.username)
            if row is None:
                password_hash = password_hash or await identity.hash_password(password)
                async with transaction(self.conn):
                    await identity_q.insert_user(
                        self.conn, username=login.username, role=login.role, jurisdiction=login.jurisdiction,
                        password_hash=password_hash, display_name=login.display_name, created_by=None,
                    )
                self.summary.users_created += 1
                row = await identity_q.get_user_by_username(self.conn, login.username)
                assert row is not None
            elif row["role"] != login.role or row["jurisdiction"] != login.jurisdiction:
                raise errors.UserExists(
                    f"{login.username} exists as a {row['role']} of {row['jurisdiction']}, not the demo's "
                    f"{login.role} of {login.jurisdiction}"
                )
            self.users[login.username] = _principal(row)
            progress("users", done, len(accounts))

    async def ensure_devices(self, now: dt.datetime, progress: Progress) -> None:
        """One enrolled device per inspector, enrolled the way a phone is (code, then enroll),
        dated before the oldest report it sends."""
        now = now - ENROLLED_BEFORE
        inspectors = [name for name, p in self.users.items() if p.role is Role.INSPECTOR]
        for done, name in enumerate(inspectors, 1):
            inspector = self.users[name]
            device_id = await q.get_live_device(self.conn, user_id=inspector.user_id, label=DEVICE_LABEL)
            if device_id is None:
                supervisor = self.users[f"{name.split('.')[0]}.sup"]
                async with transaction(self.conn):
                    code, _ = await identity.issue_enrollment(self.conn, supervisor, username=name, ttl_s=600, now=now)
                device_id, _token = await identity.enroll_device(
                    self.conn, code=code, label=DEVICE_LABEL, platform="android", client="fieldsync-demo", now=now,
                    throttle=identity.ThrottlePolicy(max_failures=1000, window_s=60),
                )
                self.summary.devices_enrolled += 1
            self.devices[name] = dataclasses.replace(inspector, device_id=device_id)
            progress("devices", done, len(inspectors))

    async def store_photo(self, photo: Photo, *, body: dict[str, Any], device: Principal) -> str:
        location = body["location"]
        data = await anyio.to_thread.run_sync(lambda: field_photo(
            photo.seed, scene=photo.scene, taken_at=photo.taken_at.astimezone(REPORTING_TZ),
            lat=location["lat"] + 0.0001, lon=location["lon"] - 0.0001,
        ))
        async with self.spool.staged() as staged:
            await staged.write(data)
            await staged.finish()
            kept = await media.store_media(
                media.holding(self.conn), device, staged=staged, expected_sha256=staged.sha256, declared_type="image/jpeg",
                store=self.store, max_pixels=self.max_pixels, now=photo.taken_at + dt.timedelta(minutes=1),
            )
        self.summary.photos_stored += kept.created
        return kept.record.sha256

    async def load(self, item: Item) -> None:
        prefix = item.county.slug
        device = self.devices[f"{prefix}.insp{item.inspector}"]
        actors = {"supervisor": self.users[f"{prefix}.sup"], "city": self.users["changzhi.city"], "device": device}
        media_refs = [{"sha256": await self.store_photo(p, body=item.body, device=device), "role": p.role}
                      for p in item.photos]
        after = {step.photo: await self.store_photo(step.photo, body=item.body, device=device)
                 for step in item.steps if step.photo is not None}
        submission = self.decode(item.id, {**item.body, "media": media_refs})
        async with transaction(self.conn):
            receipt = await reports.submit_report(self.conn, device, submission, now=item.sent_at, clock_skew_s=600)
            version = receipt.version
            for step in item.steps:
                fields = dict(step.fields)
                if step.photo is not None:
                    fields["media"] = (MediaReference(after[step.photo], "after", None),)
                request = workflow.TransitionRequest(action=step.action, version=version, **fields)
                version = await workflow.apply_transition(self.conn, actors[step.actor], item.id, request, now=step.at)
                self.summary.transitions += 1


async def load_demo(
    conn: asyncpg.Connection,
    *,
    store: MediaStore,
    spool: Spool,
    decode: Decode,
    now: dt.datetime,
    max_pixels: int,
    size: Size = Size(),
    password: str = DEMO_PASSWORD,
    progress: Progress | None = None,
) -> Summary:
    """Load what is missing of the demo; a second run finds everything and changes nothing."""
    report = progress or (lambda stage, done, total: None)
    summary = Summary(password=password, logins=logins())
    loader = _Loader(conn, store=store, spool=spool, decode=decode, max_pixels=max_pixels, summary=summary)
    await loader.ensure_users(password, report)
    await loader.ensure_devices(now, report)
    items = plan(now, size)
    present = await q.existing_reports(conn, [item.id for item in items])
    for done, item in enumerate(items, 1):
        if item.id in present:
            summary.reports_present += 1
        else:
            await loader.load(item)
            summary.reports_created += 1
        report("reports", done, len(items))
    return summary
