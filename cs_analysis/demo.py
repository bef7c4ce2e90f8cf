"""The synthetic demo workspace: a B2B SaaS book of business with planted effects.

:func:`build_demo` writes a DuckDB workspace holding all ten tables of the data contract
(:mod:`cs_analysis.contract`) for a made-up SaaS company selling an analytics product
("Analytics", with an "Automation" add-on) to companies in Japan, APAC, North America and
EMEA. :func:`generate` returns the same tables in memory (small sizes, for tests). The
data are deterministic for a seed, from a few hundred accounts to 100k accounts with tens
of millions of usage events (generated per block of accounts and written as Parquet part
files, so the events are never all in memory).

Nothing here reads "today": signups run from 2023-01-01 to shortly before the as-of date
(:data:`DEMO_AS_OF`, 2026-10-31 by default), growing over time, and no row is dated after
the as-of date.

What a CS team would find in this book (the planted effects, sizes in :data:`PLANTED`)
--------------------------------------------------------------------------------------
Segments churn differently
    Accounts' lifetimes come from a proportional-hazards model: SMB accounts churn 2.5
    times, Mid-Market 1.6 times as fast as Enterprise (``segment_churn_hr``). The other
    churn drivers below are drawn independently of segment, so a Cox model of
    ``churn ~ segment`` recovers these ratios (within ~20% at 3000 accounts). Most SMB
    accounts pay monthly and can leave at any monthly renewal; most others sign annual
    contracts and can leave only at an anniversary (the subscription then ends on the
    renewal date). Because an annual customer who decides to leave stays until the
    renewal, the yearly churn decision of annual contracts uses
    ``annual_contract_hazard_factor`` (1.5) times the hazard accumulated over the year, so
    that the lifetimes, as a Cox model sees them, keep the planted segment ratios.
Slow onboarding costs customers
    An account whose "value realized" milestone (``first_report_shared``) comes after its
    segment's target (``ttv_target_days``, counted from the kickoff meeting, or from signup
    when there was none), or never, churns 2.0 times as fast (``slow_onboarding_churn_hr``).
    Enterprise onboardings run on a CSM's 30-day plan, tech-touch SMB accounts get 45
    days; with these targets 35-40% of every segment is slow, which keeps this driver
    independent of segment. Some onboardings stall for good
    (``stalled_onboarding_share``); accounts signed recently are still onboarding.
Low-touch accounts with high-touch needs
    Logistics companies on low touch migrate from paper: without a dedicated CSM their
    time-to-value is 45 days longer (``paper_migration``), so they run past target far
    more often. Their segment, plan and MRR look like any other low-touch account's, so
    an MRR rule puts them there; :func:`cs_analysis.capacity.evaluate_coverage` flags the
    group. (High-touch Logistics accounts onboard normally: the CSM does the migration.)
Training looks better than it is
    A ``training`` session, any day in the first five weeks of onboarding, brings value 10
    days sooner when it comes before value (``training_ttv_effect_days``; never sooner than
    2 days after it). CS gives it far more often to Enterprise and to large
    companies (``training_share_by_segment``, more within a segment the larger the
    company), and large companies onboard faster anyway (time-to-value falls with
    employees), so comparing trained with untrained accounts overstates the effect;
    comparing within segment and employee size recovers about 10 days.
Detractors leave
    A latent account health drives NPS answers (through the driver ratings, see below),
    usage, CSM ratings, ticket satisfaction and stakeholder sentiment. Accounts whose mean
    NPS answer is a detractor's (0-6) churn about 1.8 times as fast as promoters' accounts
    (9-10), passives' about 1.3 times (``detractor_churn_hr``, ``passive_churn_hr``). The
    generator plants stronger ratios on the latent class (``latent_nps_class_churn_hr``),
    which a few noisy answers per account dilute to about these observed ones.
Critical tickets before a renewal
    A P1 ticket opened in the 90 days before a renewal multiplies the hazard behind the
    decision at that renewal by 1.7 (``p1_before_renewal_churn_hr``; for annual contracts
    the renewal is the anniversary, for monthly ones every month). Counted as churn at
    anniversaries, accounts with such a ticket churn about 1.5 times as often. P1
    incidents hit accounts at the same rate whatever their size (``p1_tickets_per_year``).
    Recovered from monthly snapshots of :func:`cs_analysis.support.open_critical_before_renewal`
    joined to the renewal outcome (tests/test_support.py; 3,000 accounts, seed 11): churn
    ratio 1.65 [1.39, 1.96] at 20,108 renewals, stratified by term and segment.
Champions leave
    When a key person (the executive sponsor or the owner, i.e. the champion) leaves the
    customer (``stakeholders.left_at``), the account churns 2.2 times as fast from then on
    (``champion_departure_churn_hr``). Key departures happen at the same rate in every
    segment (``key_departures_per_year``).
CSMs sense churn coming
    Quarterly CSM ratings (``health_inputs``, 1-5) follow the latent health and are about a
    point lower when the account churns within the next 6 months
    (``health_predicts_renewal``).
What customers say
    Each NPS answer is round(``nps_intercept`` + Σ weight × driver rating + noise), capped
    to 0-10, with the driver ratings (``attr_*``, 1-5, rising with health) weighted as in
    ``nps_driver_weights``. Because many answers pile up at 10, a linear regression of the
    observed score on the ratings gives about 0.8 times these weights, in the same order.
    Detractors mostly write about pricing, performance and onboarding; promoters about
    ease of use, reporting and integrations (``detractor_themes``, ``promoter_themes``;
    the words used are in ``theme_keywords``). Comments are in Japanese for most Japanese
    accounts, in English otherwise. CSAT (1-5) follows resolved support tickets
    (touchpoint ``support``), CES (1-7, higher = easier) the end of onboarding (touchpoint
    ``onboarding``; lower after a slow onboarding), NPS runs in quarterly waves (touchpoint
    ``periodic``).

Adoption: a key feature, fading usage, seats
    Most accounts use ``integrations`` (``key_feature``) within days of signup; some do
    not by day 60 (``key_feature_late_share``: 70% of slow onboardings, 10% of the
    others; 40% of them never). Non-adopters churn faster (users vs non-users by day 60,
    Cox adjusted for segment and size: about 0.6-0.65) because they are mostly slow
    onboardings: an association the data show, planted through onboarding, not a cause.
    In the three months before its first churn an account's events and active users
    fall to ``pre_churn_usage_factor`` of normal, so ``usage_trend`` classes about half
    of the accounts churning within 45 days as declining or dropped (vs about 17% of
    those that stay). Seats bought = the account's user pool / a planted utilisation
    (``seat_pool_utilisation``); a shelfware group (``seat_shelfware_share``) bought
    three to ten times the seats it uses.

Other realism: onboarding milestones out of order and duplicated for a few accounts,
recent accounts still onboarding (censored); dormant months for live accounts (so "active
exactly at k" and "active at k or later" differ); usage declining before churn and none
after; a few accounts with no events at all; reactivations (an account churns and comes
back months later); expansion, contraction and a second product; support tickets whose
first weeks are dominated by onboarding questions, some still open; stakeholders with
business and technical roles, departures; CS activities by touch model; feature requests,
several people of one account asking for the same thing.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_EVENTS_PER_ACCOUNT_MONTH",
    "DEMO_AS_OF",
    "DEMO_START",
    "EVENT_BLOCK",
    "EVENT_FEATURES",
    "PLANTED",
    "build_demo",
    "generate",
    "usage_event_chunks",
]

#: The demo's as-of date: fixed, never "today".
DEMO_AS_OF = dt.date(2026, 10, 31)
#: First signup date of the demo book.
DEMO_START = dt.date(2023, 1, 1)
#: Size of the default demo workspace (``data/demo.duckdb``).
DEFAULT_ACCOUNTS = 3000
#: Mean usage events per active account-month (for an account of average size and health).
DEFAULT_EVENTS_PER_ACCOUNT_MONTH = 40.0
#: Accounts per random-number block of usage events. Each block has its own random stream,
#: so the events do not depend on how blocks are grouped into chunks.
EVENT_BLOCK = 250

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
MILESTONES_SETUP = ("account_configured", "users_invited", "data_imported")
MILESTONE_VALUE = "first_report_shared"
#: Product events and the feature each belongs to.
EVENT_FEATURES: dict[str, str] = {
    "login": "core",
    "dashboard_viewed": "dashboards",
    "search": "core",
    "report_created": "reports",
    "report_shared": "reports",
    "export": "reports",
    "integration_synced": "integrations",
    "comment_added": "collaboration",
    "user_invited": "admin",
    "alert_configured": "automation",
    "workflow_run": "automation",
}
#: Driver ratings (attr_*) rise by this much per standard deviation of latent health.
_ATTR_PER_HEALTH = 1.0
_EVENT_P = np.array([0.22, 0.25, 0.10, 0.10, 0.05, 0.06, 0.10, 0.06, 0.02, 0.02, 0.02])

PLANTED: dict = {
    # --- churn: proportional hazards (monthly hazard x these ratios) -------------------
    "segment_churn_hr": {"SMB": 2.5, "Mid-Market": 1.6, "Enterprise": 1.0},
    # Enterprise promoter account, onboarded in time, no key departure, no P1 ticket:
    "base_monthly_churn_hazard": 0.0075,
    "annual_contract_share": {"SMB": 0.15, "Mid-Market": 0.70, "Enterprise": 1.0},
    "annual_contract_hazard_factor": 1.5,
    "slow_onboarding_churn_hr": 2.0,
    # NPS class of an account (its mean answer): detractor vs promoter accounts, as observed;
    # the generator uses the latent class with the stronger ratios below, which answer
    # noise (a few noisy answers per account) dilutes to about the observed ones.
    "detractor_churn_hr": 1.8,
    "passive_churn_hr": 1.3,
    "latent_nps_class_churn_hr": {"detractor": 2.2, "passive": 1.4, "promoter": 1.0},
    "p1_before_renewal_churn_hr": 1.7,
    "p1_window_days": 90,
    "p1_tickets_per_year": 0.5,
    "champion_departure_churn_hr": 2.2,
    "key_roles": ["executive sponsor", "owner"],
    "key_departures_per_year": 0.15,
    "reactivation_share": 0.05,  # of churned accounts, back 2-9 months later
    # --- onboarding ---------------------------------------------------------------------
    "onboarding_stages": {
        "setup_complete": list(MILESTONES_SETUP),
        "value_realized": [MILESTONE_VALUE],
    },
    "extra_milestones": ["integration_connected", "first_dashboard_created"],
    "ttv_clock": "kickoff_date (signup_date when the account has no kickoff)",
    "ttv_target_days": {"SMB": 45, "Mid-Market": 40, "Enterprise": 30},
    "ttv_median_days_untrained": {"SMB": 40, "Mid-Market": 35, "Enterprise": 30},
    "ttv_employees_elasticity": -0.06,  # TTV ∝ employees ** -0.06 (bigger is faster)
    "stalled_onboarding_share": 0.07,
    "training_ttv_effect_days": -10,
    # at the segment's median size; within a segment larger companies get it more often
    "training_share_by_segment": {"SMB": 0.10, "Mid-Market": 0.35, "Enterprise": 0.70},
    # --- coverage (cs_analysis.capacity) -------------------------------------------------
    # Low-touch accounts of one industry migrate from paper and need a CSM's help: without
    # it their time-to-value is this many days longer (no extra random draws, so every
    # other table stays as it was). Coverage evaluation finds them (low touch, Logistics).
    "paper_migration": {"industry": "Logistics", "touch_model": "low", "extra_ttv_days": 45},
    # --- surveys ------------------------------------------------------------------------
    "nps_driver_weights": {
        "attr_value": 0.9,
        "attr_ease_of_use": 0.7,
        "attr_reliability": 0.5,
        "attr_support": 0.4,
    },
    "nps_intercept": 0.5,
    "nps_noise_sd": 0.8,
    "detractor_themes": ["pricing", "performance", "onboarding"],
    "promoter_themes": ["ease_of_use", "reporting", "integrations"],
    # --- health -------------------------------------------------------------------------
    "health_predicts_renewal": {
        "horizon_days": 182,
        "rating_drop_before_churn": 1.1,  # points on the 1-5 scale, before rounding
        "rating_per_health_sd": 0.7,
        "rating_noise_sd": 0.7,
    },
    "ces_scale": "1-7, higher = easier",
    "survey_touchpoints": {"nps": "periodic", "csat": "support", "ces": "onboarding"},
    "stakeholder_roles": ["executive sponsor", "decision maker", "owner", "heavy user",
                          "admin"],
    # --- usage --------------------------------------------------------------------------
    "pre_churn_usage_factor": [0.75, 0.5, 0.3],  # 3, 2, 1 months before churn
    # ... applied to events and to the pool of users active in those months (so weekly
    # active users fall too), for every account in the months before its first churn
    "no_usage_share": 0.015,
    # --- adoption (cs_analysis.adoption) -------------------------------------------------
    # A key feature some accounts do not adopt within 60 days of signup: most of them are
    # slow onboardings (which churn slow_onboarding_churn_hr times as fast), so
    # non-adopters churn faster; an association planted through onboarding, not a cause.
    "key_feature": "integrations",
    "key_feature_landmark_days": 60,
    # share of accounts whose first use of the key feature comes after day 60 (or never)
    "key_feature_late_share": {"slow onboarding": 0.7, "on time": 0.1},
    "key_feature_never_share": 0.4,  # of the late ones, never within the book
    # users vs non-users of the key feature by day 60, Cox adjusted for segment and size:
    # about this hazard ratio (what features_and_retention should find)
    "key_feature_expected_hr": 0.6,
    # seats bought per account = its user pool / a planted utilisation; a shelfware
    # group bought far more seats than it uses. Line seats follow the line's MRR
    # (expansions add seats); Automation add-on lines carry 0 seats (not per user).
    "seat_pool_utilisation": (0.75, 1.1),  # uniform range, typical accounts
    "seat_shelfware_share": 0.15,
    "seat_shelfware_utilisation": (0.1, 0.3),
}


# ======================================================================================
# Vocabularies
# ======================================================================================
_JP_STEMS = [
    "山田", "さくら", "青葉", "ミライ", "日本", "東京", "大和", "富士", "北斗", "翔栄",
    "アオイ", "みどり", "光", "丸の内", "テクノ", "ネクスト", "サンライズ", "中央", "協和",
    "ひかり", "双葉", "朝日", "白鷺", "若葉", "千代田", "高砂", "明星", "藤原", "昭和", "大成",
    "三和", "東洋", "太陽", "新星", "銀河", "清水", "松風", "桜井", "花園", "髙橋",
]
_JP_KINDS = [
    "システム", "物流", "製作所", "フーズ", "メディカル", "不動産", "電機", "ソリューションズ",
    "エンジニアリング", "商事", "建設", "印刷", "ホールディングス", "工業", "薬品", "精機",
    "情報サービス", "ネットワークス", "トレーディング", "化学",
]
_JP_PLACES = ["", "東京", "大阪", "名古屋", "福岡", "札幌", "仙台", "横浜", "神戸", "京都", "広島"]
_EN_FIRST = [
    "Blue", "North", "Silver", "Bright", "Summit", "Harbor", "Pioneer", "Crescent", "Evergreen",
    "Golden", "Redwood", "Atlas", "Cobalt", "Maple", "Orion", "Granite", "Lumen", "Vista",
    "Meridian", "Horizon", "Cedar", "Falcon", "Keystone", "Sterling", "Willow",
]
_EN_SECOND = [
    "Analytics", "Logistics", "Health", "Retail", "Systems", "Foods", "Capital", "Labs",
    "Energy", "Media", "Works", "Partners", "Dynamics", "Networks", "Software", "Mobility",
    "Learning", "Realty", "Robotics", "Supply", "Insurance", "Travel", "Pharma", "Textiles",
    "Design",
]
_EN_FORMS = ["Inc.", "Ltd", "LLC", "GmbH", "Pte. Ltd.", "Co.", "Group", "plc"]
_EN_PLACES = ["", "Pacific", "Atlantic", "Global", "Digital", "United", "Coastal", "Prime"]

_JP_SURNAMES = [
    "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田",
    "山田", "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水", "山崎", "森",
    "池田", "橋本", "阿部", "石川", "髙木", "前田", "藤田", "岡田",
]
_JP_GIVEN = [
    "健太", "翔", "大輔", "拓也", "直樹", "陽翔", "蓮", "悠真", "美咲", "結衣", "陽菜",
    "さくら", "愛", "彩", "恵", "真由美", "裕子", "浩二", "誠", "和也", "修", "明美",
    "千尋", "葵", "花子", "智子", "隆", "学", "亮", "舞",
]
_EN_GIVEN = [
    "James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Emma", "Daniel",
    "Olivia", "Wei", "Mei", "Arjun", "Priya", "Lukas", "Sofia", "Noah", "Ava", "Ethan",
    "Chloe", "Min-jun", "Ji-woo", "Carlos", "Ana", "Tom", "Grace", "Hannah", "Omar",
    "Leila", "Samuel",
]
_EN_SURNAMES = [
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Taylor", "Anderson",
    "Thomas", "Lee", "Chen", "Wang", "Kim", "Park", "Singh", "Patel", "Müller", "Schmidt",
    "Rossi", "Dubois", "Martin", "Nguyen", "Tan", "Lim", "Walker", "Hall", "Young", "King",
    "Wright",
]

_CSMS = {  # touch model -> (Japan CSMs, international CSMs)
    "high": (["佐藤 結衣", "田中 健"], ["Emily Carter", "David Kim"]),
    "low": (["鈴木 陽翔", "伊藤 さくら"], ["Michael Brown", "Priya Nair"]),
}
_REGIONS = ("Japan", "APAC", "NA", "EMEA")
_REGION_P = (0.45, 0.15, 0.25, 0.15)
_REGION_UTC_OFFSET = np.array([9, 8, -5, 1])  # hours, for business-hours timestamps
_INDUSTRIES = (
    "Manufacturing", "Retail", "Financial Services", "Healthcare", "Software",
    "Professional Services", "Logistics", "Education", "Media", "Real Estate",
)
_INDUSTRY_P = (0.18, 0.12, 0.10, 0.08, 0.14, 0.12, 0.08, 0.06, 0.06, 0.06)
_PLANS = ("Starter", "Pro", "Enterprise")
_PLAN_P = {0: (0.70, 0.30, 0.0), 1: (0.15, 0.65, 0.20), 2: (0.0, 0.25, 0.75)}
_PLAN_MRR = (400.0, 1800.0, 9000.0)
_EMP_MEDIAN = (25.0, 250.0, 3000.0)
_EMP_SIGMA = (0.7, 0.6, 0.8)
_EMP_RANGE = ((2, 400), (40, 4000), (300, 300_000))

_ROLES = ("executive sponsor", "decision maker", "owner", "heavy user", "admin")
_TITLES = {  # (role, domain) -> (English titles, Japanese titles)
    ("executive sponsor", "business"): (
        ["CEO", "COO", "VP of Sales", "Head of Operations", "Chief Customer Officer"],
        ["代表取締役", "執行役員", "事業部長", "取締役 営業本部長"],
    ),
    ("executive sponsor", "technical"): (
        ["CTO", "CIO", "VP of Engineering"],
        ["CTO", "情報システム部長", "技術担当役員"],
    ),
    ("decision maker", "business"): (
        ["Director of Operations", "Sales Director", "Head of Marketing"],
        ["部長", "営業部長", "経営企画部長"],
    ),
    ("decision maker", "technical"): (
        ["IT Director", "Head of IT", "VP of Engineering"],
        ["情報システム部長", "開発部長", "VPoE"],
    ),
    ("owner", "business"): (
        ["Operations Manager", "Product Manager", "Business Owner", "CS Manager"],
        ["課長", "マネージャー", "プロダクトマネージャー", "業務改革推進室 室長"],
    ),
    ("owner", "technical"): (
        ["Tech Lead", "Engineering Manager", "Data Platform Lead"],
        ["テックリード", "開発マネージャー", "データ基盤リーダー"],
    ),
    ("heavy user", "business"): (
        ["Analyst", "Account Manager", "Marketing Specialist"],
        ["担当", "主任", "アナリスト"],
    ),
    ("heavy user", "technical"): (
        ["Software Engineer", "Data Engineer", "Data Analyst"],
        ["エンジニア", "データエンジニア", "データアナリスト"],
    ),
    ("admin", "business"): (
        ["Office Manager", "Sales Operations"],
        ["総務担当", "営業企画担当"],
    ),
    ("admin", "technical"): (
        ["IT Administrator", "System Administrator"],
        ["情報システム担当", "システム管理者"],
    ),
}
_INFLUENCE_MEAN = {"executive sponsor": 4.6, "decision maker": 4.2, "owner": 3.5,
                   "heavy user": 2.4, "admin": 2.2}

THEMES = ("onboarding", "pricing", "support", "performance", "ease_of_use", "integrations",
          "reporting")
_THEME_P = {  # NPS category -> probability of each theme (order of THEMES)
    "detractor": (0.18, 0.25, 0.13, 0.22, 0.08, 0.07, 0.07),
    "passive": (0.13, 0.15, 0.15, 0.13, 0.15, 0.14, 0.15),
    "promoter": (0.05, 0.03, 0.16, 0.06, 0.28, 0.18, 0.24),
}
PLANTED["theme_keywords"] = {
    "onboarding": ["onboarding", "setup", "set up", "導入", "初期設定", "オンボーディング"],
    "pricing": ["price", "pricing", "expensive", "cost", "料金", "価格", "費用", "高い"],
    "support": ["support", "サポート", "問い合わせ", "対応"],
    "performance": ["slow", "performance", "loading", "遅", "重く", "重い", "表示速度", "動作"],
    "ease_of_use": ["easy", "intuitive", "ease of use", "使いやす", "使い勝手", "直感的"],
    "integrations": ["integration", "Salesforce", "Slack", "連携", "kintone"],
    "reporting": ["report", "dashboard", "レポート", "ダッシュボード"],
}
_COMMENTS = {  # (theme, tone) -> (English, Japanese)
    ("onboarding", "neg"): (
        ["The onboarding took far too long and nobody told us what to do next.",
         "Setup was confusing; we needed weeks to import our data.",
         "Onboarding materials are thin, we had to figure out the setup ourselves."],
        ["導入に時間がかかりすぎました。次に何をすべきか分かりませんでした。",
         "初期設定が分かりにくく、データの取り込みに数週間かかりました。",
         "オンボーディングの資料が少なく、自分たちで手探りでした。"],
    ),
    ("onboarding", "pos"): (
        ["Onboarding was smooth and the kickoff set clear goals.",
         "The setup guide got us running in days."],
        ["オンボーディングがスムーズで、キックオフで目標が明確になりました。",
         "初期設定のガイドのおかげで数日で使い始められました。"],
    ),
    ("pricing", "neg"): (
        ["Too expensive for what we use; the price per user is hard to justify.",
         "The pricing went up at renewal and the cost is now a problem.",
         "We pay for features we never use. Pricing should be more flexible."],
        ["利用している機能に対して料金が高いです。",
         "更新時に価格が上がり、費用が社内で問題になっています。",
         "使わない機能にも費用がかかっている。料金体系をもっと柔軟にしてほしい。"],
    ),
    ("pricing", "pos"): (
        ["Fair price for the value we get.", "The cost pays for itself every month."],
        ["価格に見合う価値があります。", "費用以上の効果が毎月出ています。"],
    ),
    ("support", "neg"): (
        ["Support takes days to answer and tickets get closed without a fix.",
         "We had to explain the same issue to support three times."],
        ["サポートからの返答に時間がかかり、解決しないままクローズされます。",
         "問い合わせのたびに同じ説明を繰り返す必要がありました。"],
    ),
    ("support", "pos"): (
        ["Support is fast and really knows the product.",
         "Great support team, every question answered the same day."],
        ["サポートの対応が早く、製品をよく理解しています。",
         "問い合わせへの対応が丁寧で、当日中に回答がもらえます。"],
    ),
    ("performance", "neg"): (
        ["Pages are slow to load with our data volume.",
         "Performance is poor in the mornings; loading takes minutes.",
         "Too slow with large data sets."],
        ["データ量が多いと画面の表示速度が遅いです。",
         "朝の時間帯は動作が重く、読み込みに数分かかります。",
         "大量データだと遅すぎて使えません。"],
    ),
    ("performance", "pos"): (
        ["Fast and reliable, no performance problems.", "Loading is quick even with big data."],
        ["動作が速く安定しています。", "大量データでも表示速度が速いです。"],
    ),
    ("ease_of_use", "neg"): (
        ["Not easy to use for non-technical staff.", "The interface is not intuitive."],
        ["現場のメンバーには使い勝手が悪いです。", "画面が直感的ではありません。"],
    ),
    ("ease_of_use", "pos"): (
        ["Very easy to use, the whole team adopted it quickly.",
         "Intuitive interface, little training needed.",
         "Ease of use is the best part; everyone can build what they need."],
        ["とても使いやすく、チーム全体がすぐに使いこなせました。",
         "直感的に操作でき、研修がほとんど不要でした。",
         "使い勝手が良く、誰でも必要なものを作れます。"],
    ),
    ("integrations", "neg"): (
        ["The Salesforce integration breaks often.", "We need a Slack integration that works."],
        ["Salesforceとの連携がよく止まります。", "kintone連携がないのが不便です。"],
    ),
    ("integrations", "pos"): (
        ["The Salesforce integration saves us hours every week.",
         "Integration with Slack and our CRM works perfectly."],
        ["Salesforce連携で毎週何時間も節約できています。",
         "Slackや社内システムとの連携が便利です。"],
    ),
    ("reporting", "neg"): (
        ["Reports are too rigid, we cannot customize them.",
         "Dashboard sharing is limited."],
        ["レポートの自由度が低く、カスタマイズできません。",
         "ダッシュボードの共有機能が限られています。"],
    ),
    ("reporting", "pos"): (
        ["The reports finally give management one shared view.",
         "Shared dashboards replaced our weekly Excel report.",
         "Reporting is excellent; the board reviews our dashboard every month."],
        ["レポートで経営陣と同じ数字を見られるようになりました。",
         "ダッシュボードの共有で毎週のExcel集計が不要になりました。",
         "レポート機能が素晴らしく、役員会で毎月ダッシュボードを見ています。"],
    ),
}
_HEALTH_NOTES = {  # rating -> (English, Japanese)
    1: (["Renewal at risk: sponsor unresponsive.", "Customer evaluating a competitor."],
        ["更新リスク高：スポンサーと連絡が取れない。", "競合製品を検討中。"]),
    2: (["Usage dropping; escalation open.", "Champion frustrated with support."],
        ["利用が減少、エスカレーション対応中。", "担当者がサポートに不満。"]),
    3: (["Stable, limited adoption beyond one team.", "Mixed feedback at last QBR."],
        ["安定。利用は一部門にとどまる。", "前回の定例で評価は賛否両論。"]),
    4: (["Healthy; new use cases discussed.", "Good engagement from the owner."],
        ["良好。新しい活用方法を議論中。", "担当者の関与が高い。"]),
    5: (["Advocate; open to a case study.", "Expansion likely next quarter."],
        ["推進者あり。事例化に前向き。", "来期に拡大の見込み。"]),
}
_REQUESTS = {  # theme -> (English titles, Japanese titles)
    "reporting": (["Scheduled PDF reports", "Custom report templates", "Report version history"],
                  ["レポートの定期配信", "レポートテンプレートのカスタマイズ"]),
    "integrations": (["Salesforce two-way sync", "Slack notifications", "Microsoft Teams app"],
                     ["kintone連携", "Chatwork通知", "Salesforce双方向連携"]),
    "performance": (["Faster dashboard loading", "Large data exports"],
                    ["大量データでの表示速度改善", "大容量エクスポート"]),
    "pricing": (["Plan for small teams", "Usage-based pricing option"],
                ["小規模チーム向けプラン", "ユーザー数に依存しない料金体系"]),
    "ease_of_use": (["Bulk edit", "Keyboard shortcuts", "Simpler chart builder"],
                    ["一括編集機能", "チャート作成画面の簡略化"]),
    "onboarding": (["In-app setup guide", "Sample dashboards for new users"],
                   ["初期設定ガイドの充実", "新規ユーザー向けサンプル"]),
    "security": (["SSO (SAML)", "IP address restriction", "Audit log export"],
                 ["SAML認証によるSSO", "IPアドレス制限", "監査ログの出力"]),
}
_REQUEST_THEMES = tuple(_REQUESTS)
_REQUEST_THEME_P = (0.22, 0.20, 0.10, 0.06, 0.14, 0.08, 0.20)


# ======================================================================================
# Small helpers
# ======================================================================================
_EPOCH = np.datetime64("1970-01-01", "D")
_BIG = np.iinfo(np.int64).max // 4  # "never" as a day number


def _day(d: dt.date) -> int:
    return int((np.datetime64(d, "D") - _EPOCH).astype(np.int64))


def _add_months(days, k):
    """Day numbers ``days`` moved by ``k`` calendar months (day of month clipped)."""
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64)
    nm = m + np.asarray(k, dtype=np.int64)
    length = ((nm + 1).astype("datetime64[D]") - nm.astype("datetime64[D]")).astype(np.int64)
    return (nm.astype("datetime64[D]") + np.minimum(dom, length - 1)).astype(np.int64)


def _month_of(days) -> np.ndarray:
    """Months since 1970-01 of day numbers."""
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype(
        "datetime64[M]").astype(np.int64)


def _month_start(months) -> np.ndarray:
    return np.asarray(months, dtype=np.int64).astype("datetime64[M]").astype(
        "datetime64[D]").astype(np.int64)


def _to_dates(days) -> np.ndarray:
    """Day numbers (``_BIG`` or negative = missing) to datetime64[us] (NaT when missing)."""
    days = np.asarray(days, dtype=np.int64)
    out = days.astype("datetime64[D]").astype("datetime64[us]")
    out[(days >= _BIG) | (days < 0)] = np.datetime64("NaT")
    return out


def _to_ts(seconds) -> np.ndarray:
    """Seconds since the epoch (float; NaN = missing) to datetime64[us]."""
    s = np.asarray(seconds, dtype=float)
    us = np.where(np.isnan(s), 0, np.round(s * 1e6)).astype(np.int64)
    out = us.astype("datetime64[us]")
    out[np.isnan(s)] = np.datetime64("NaT")
    return out


def _business_seconds(rng, days, utc_offset_hours) -> np.ndarray:
    """A time of day in local business hours on each day, as UTC seconds since the epoch.

    Clipped to the UTC calendar day so that dated bounds (signup, as-of) hold.
    """
    days = np.asarray(days, dtype=np.int64)
    local_h = np.clip(rng.normal(13.0, 2.4, days.size), 7.5, 21.5)
    sec = (local_h - utc_offset_hours) * 3600.0 + rng.random(days.size) * 60
    sec = np.clip(sec, 0, 86399)
    return days * 86400.0 + np.floor(sec)


def _pick(rng, options, n) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def _str(values) -> pd.Series:
    return pd.Series(values, dtype="str")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p):
    return math.log(p / (1 - p))


def _ragged_rank(group: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal values of a sorted ``group`` array."""
    n = group.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


# ======================================================================================
# The book: account-level truth (one row per account, numpy arrays)
# ======================================================================================
@dataclass
class _Book:
    """Account-level latent and observed attributes, from which every table is drawn."""

    n: int
    seed: int
    as_of: int  # day number
    ids: np.ndarray  # object array of account ids
    signup: np.ndarray
    segment: np.ndarray  # 0 SMB, 1 MM, 2 Ent
    employees: np.ndarray
    region: np.ndarray  # index into _REGIONS
    industry: np.ndarray
    plan: np.ndarray
    touch: np.ndarray  # object: high / low / tech
    csm: np.ndarray  # object, None for tech touch
    kickoff: np.ndarray  # day or _BIG
    names: np.ndarray
    health: np.ndarray
    nps_class: np.ndarray  # 0 detractor, 1 passive, 2 promoter
    trained: np.ndarray
    training_day: np.ndarray
    clock: np.ndarray
    stalled: np.ndarray
    value_day: np.ndarray  # clock + TTV (may be after as-of), _BIG if stalled
    slow: np.ndarray
    annual: np.ndarray
    p1_acc: np.ndarray  # P1 tickets (potential; sorted by account, day)
    p1_sec: np.ndarray  # opened at, UTC seconds
    key_dep_day: np.ndarray  # first key departure (potential), day number
    key_dep_role: np.ndarray  # 0 executive sponsor, 1 owner
    churn: np.ndarray  # first churn (end of service), _BIG if none by as-of
    react: np.ndarray  # reactivation day, _BIG if none
    users: np.ndarray
    automation: np.ndarray
    no_usage: np.ndarray
    dormancy: np.ndarray  # monthly probability of a dormant month

    @property
    def end1(self) -> np.ndarray:
        """End (exclusive) of the first service interval, capped after the as-of day."""
        return np.minimum(self.churn, self.as_of + 1)

    def intervals(self):
        """Service intervals ``(account, start_day, end_day_exclusive)`` up to the as-of."""
        acc = np.arange(self.n)
        re = self.react < _BIG
        a = np.r_[acc, acc[re]]
        lo = np.r_[self.signup, self.react[re]]
        hi = np.r_[self.end1, np.full(re.sum(), self.as_of + 1)]
        order = np.lexsort((lo, a))
        return a[order], lo[order], hi[order]

    def active_on(self, acc: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Whether account ``acc`` has service on day ``days`` (vectorized)."""
        first = (days >= self.signup[acc]) & (days < self.end1[acc])
        second = (days >= self.react[acc]) & (days <= self.as_of)
        return (first | second) & (days <= self.as_of)


def _simulate(n: int, seed: int, as_of: dt.date) -> _Book:
    """Draw the book: accounts, latent health, onboarding, and lifetimes."""
    if n < 1:
        raise ValueError(f"accounts must be at least 1, got {n}")
    as_of_day = _day(as_of)
    start = _day(DEMO_START)
    end = as_of_day - 7
    if end - start < 180:
        raise ValueError(
            f"as_of {as_of} is too early: the demo's signups start on {DEMO_START} and need "
            "at least six months before the as-of date"
        )
    rng = np.random.default_rng([seed, 1])

    # -- signups, growing over time (density ∝ exp(r t), three times as many at the end) --
    span = end - start
    r = math.log(3) / span
    u = rng.random(n)
    signup = np.sort(start + np.floor(np.log1p(u * math.expm1(r * span)) / r).astype(np.int64))
    width = max(5, len(str(n)))
    ids = np.array([f"A{i:0{width}d}" for i in range(1, n + 1)], dtype=object)

    segment = rng.choice(3, n, p=[0.55, 0.30, 0.15])
    emp = np.exp(np.log(np.asarray(_EMP_MEDIAN)[segment])
                 + np.asarray(_EMP_SIGMA)[segment] * rng.normal(size=n))
    lo_e = np.array([r_[0] for r_ in _EMP_RANGE])[segment]
    hi_e = np.array([r_[1] for r_ in _EMP_RANGE])[segment]
    employees = np.clip(np.round(emp), lo_e, hi_e).astype(np.int64)
    z_emp = (np.log(employees) - np.log(np.asarray(_EMP_MEDIAN)[segment])) / np.asarray(
        _EMP_SIGMA)[segment]
    region = rng.choice(4, n, p=_REGION_P)
    industry = rng.choice(len(_INDUSTRIES), n, p=_INDUSTRY_P)
    plan = np.empty(n, dtype=np.int64)
    for s in range(3):
        m = segment == s
        plan[m] = rng.choice(3, m.sum(), p=_PLAN_P[s])
    ut = rng.random(n)
    touch = np.where(segment == 2, "high",
                     np.where(segment == 1, np.where(ut < 0.3, "high", "low"),
                              np.where(ut < 0.1, "low", "tech"))).astype(object)
    csm = np.full(n, None, dtype=object)
    for t, (jp, intl) in _CSMS.items():
        m = touch == t
        japan = region == 0
        csm[m & japan] = _pick(rng, jp, int((m & japan).sum()))
        csm[m & ~japan] = _pick(rng, intl, int((m & ~japan).sum()))

    # kickoff: a few days to weeks after signup; tech-touch accounts often have none
    miss_p = np.select([touch == "tech", touch == "low"], [0.25, 0.05], 0.02)
    delay = 1 + np.floor(rng.gamma(2.0, 5.0, n)).astype(np.int64)
    kickoff = np.where(rng.random(n) < miss_p, _BIG, signup + delay)
    kickoff = np.where(kickoff > as_of_day, _BIG, kickoff)

    names = _company_names(rng, region)

    # -- latent health and NPS class (independent of segment) --------------------------
    health = rng.normal(size=n)
    w = PLANTED["nps_driver_weights"]
    expected_nps = PLANTED["nps_intercept"] + sum(w.values()) * (3.0 + _ATTR_PER_HEALTH * health)
    nps_class = np.where(expected_nps < 6.5, 0, np.where(expected_nps >= 8.5, 2, 1))

    # -- onboarding: training, time-to-value, stalls, slow ------------------------------
    share = np.array([PLANTED["training_share_by_segment"][s] for s in SEGMENTS])
    p_train = _sigmoid(np.array([_logit(p) for p in share])[segment] + 0.8 * z_emp)
    trained = rng.random(n) < p_train
    clock = np.where(kickoff < _BIG, kickoff, signup)
    # training any day in the first five weeks, independent of how fast the account
    # onboards; it brings value 10 days sooner when it comes before value (never sooner
    # than 2 days after it), and changes nothing after value
    training_day = np.where(trained, clock + rng.integers(1, 36, n), _BIG)
    base = 40.0 * np.exp(PLANTED["ttv_employees_elasticity"] * (np.log(employees)
                                                                 - math.log(25.0))
                         + 0.45 * rng.normal(size=n))
    base = np.maximum(3.0, base)
    before = trained & (training_day - clock < base)
    ttv = np.where(before, np.maximum(training_day - clock + 2,
                                      base + PLANTED["training_ttv_effect_days"]), base)
    # low-touch accounts with high-touch needs (migrating from paper): onboard slower
    paper = PLANTED["paper_migration"]
    ttv = ttv + paper["extra_ttv_days"] * (
        (touch == paper["touch_model"]) & (np.asarray(_INDUSTRIES)[industry] == paper["industry"]))
    stalled = rng.random(n) < PLANTED["stalled_onboarding_share"]
    value_day = np.where(stalled, _BIG, clock + np.round(ttv).astype(np.int64))
    target = np.array([PLANTED["ttv_target_days"][s] for s in SEGMENTS])[segment]
    slow = stalled | (value_day - clock > target)

    # -- contracts, P1 incidents, key departures ----------------------------------------
    annual = rng.random(n) < np.array(
        [PLANTED["annual_contract_share"][s] for s in SEGMENTS])[segment]
    horizon = as_of_day + 1 - signup
    cnt = rng.poisson(PLANTED["p1_tickets_per_year"] * horizon / 365.25)
    p1_acc = np.repeat(np.arange(n), cnt)
    p1_day = signup[p1_acc] + np.floor(rng.random(p1_acc.size) * horizon[p1_acc]).astype(
        np.int64)
    order = np.lexsort((p1_day, p1_acc))
    p1_acc, p1_day = p1_acc[order], p1_day[order]
    p1_sec = _business_seconds(rng, p1_day, _REGION_UTC_OFFSET[region[p1_acc]])
    key_dep_day = signup + 30 + np.floor(
        rng.exponential(365.25 / PLANTED["key_departures_per_year"], n)).astype(np.int64)
    key_dep_role = (rng.random(n) < 0.6).astype(np.int64)

    # -- lifetimes: discrete monthly proportional hazards -------------------------------
    churn = _simulate_churn(rng, n, signup, segment, slow, nps_class, annual, key_dep_day,
                            p1_acc, p1_day, as_of_day)
    churned = churn <= as_of_day
    react = np.full(n, _BIG)
    back = churned & (churn <= as_of_day - 45) & (
        rng.random(n) < PLANTED["reactivation_share"])
    rday = _add_months(np.where(back, churn, signup), rng.integers(2, 10, n))
    back &= rday <= as_of_day
    react[back] = rday[back]

    # -- usage profile --------------------------------------------------------------------
    users = np.clip(np.round(employees ** 0.55 * np.exp(0.3 * rng.normal(size=n))), 2,
                    400).astype(np.int64)
    automation = rng.random(n) < np.array([0.06, 0.18, 0.35])[segment] * np.exp(
        0.3 * health)
    no_usage = rng.random(n) < PLANTED["no_usage_share"]
    dormancy = np.clip(0.03 + 0.03 * (health < -0.5) + 0.02 * (touch == "tech"), 0, 1)

    return _Book(
        n=n, seed=seed, as_of=as_of_day, ids=ids, signup=signup, segment=segment,
        employees=employees, region=region, industry=industry, plan=plan, touch=touch,
        csm=csm, kickoff=kickoff, names=names, health=health, nps_class=nps_class,
        trained=trained, training_day=training_day, clock=clock, stalled=stalled,
        value_day=value_day, slow=slow, annual=annual, p1_acc=p1_acc, p1_sec=p1_sec,
        key_dep_day=key_dep_day, key_dep_role=key_dep_role, churn=churn, react=react,
        users=users, automation=automation, no_usage=no_usage, dormancy=dormancy,
    )


def _simulate_churn(rng, n, signup, segment, slow, nps_class, annual, key_dep_day, p1_acc,
                    p1_day, as_of_day) -> np.ndarray:
    """First churn day (end of service) per account, ``_BIG`` when none by the as-of date.

    Month by month since signup, each account has the hazard
    ``base × HR_segment × HR_slow^slow × HR_nps_class × HR_champion^(key person left)``.
    Monthly contracts may end at every monthly renewal with probability
    ``1 − exp(−hazard × HR_p1^(P1 in the 90 days before))``; annual contracts only at an
    anniversary, with the hazard accumulated over the year times
    ``annual_contract_hazard_factor`` (and the same P1 factor).
    """
    p = PLANTED
    seg_hr = np.array([p["segment_churn_hr"][s] for s in SEGMENTS])[segment]
    latent = p["latent_nps_class_churn_hr"]
    cls_hr = np.array([latent["detractor"], latent["passive"], latent["promoter"]])[nps_class]
    lam0 = p["base_monthly_churn_hazard"] * seg_hr * cls_hr * np.where(
        slow, p["slow_onboarding_churn_hr"], 1.0)
    window = p["p1_window_days"]
    keys = p1_acc.astype(np.int64) * 1_000_000 + (p1_day - signup[p1_acc])
    idx = np.arange(n, dtype=np.int64) * 1_000_000
    alive = np.ones(n, dtype=bool)
    churn = np.full(n, _BIG)
    acc_hazard = np.zeros(n)
    max_months = int(_month_of(as_of_day) - _month_of(signup.min())) + 1
    for m in range(1, max_months + 1):
        renewal = _add_months(signup, m)
        lam = lam0 * np.where(key_dep_day < renewal - 15, p["champion_departure_churn_hr"],
                              1.0)
        acc_hazard += lam
        rel = renewal - signup
        p1 = (np.searchsorted(keys, idx + rel) - np.searchsorted(keys, idx + rel - window)) > 0
        due = alive & (renewal <= as_of_day)
        decide = due & (~annual | (m % 12 == 0))
        hazard = np.where(annual, acc_hazard * p["annual_contract_hazard_factor"], lam)
        hazard = hazard * np.where(p1, p["p1_before_renewal_churn_hr"], 1.0)
        leave = decide & (rng.random(n) < -np.expm1(-hazard))
        churn[leave] = renewal[leave]
        alive &= ~leave
        acc_hazard[decide] = 0.0
    return churn


def _company_names(rng, region) -> np.ndarray:
    """Company names: Japanese (株式会社…) for most Japanese accounts, English otherwise."""
    n = region.size
    japanese = (region == 0) & (rng.random(n) < 0.92)
    out = np.empty(n, dtype=object)
    for jp, m in ((True, japanese), (False, ~japanese)):
        k = int(m.sum())
        if k == 0:
            continue
        if jp:
            parts = (_JP_STEMS, _JP_KINDS, ("前", "後"), _JP_PLACES)
        else:
            parts = (_EN_FIRST, _EN_SECOND, _EN_FORMS, _EN_PLACES)
        sizes = [len(x) for x in parts]
        space = int(np.prod(sizes))
        perm = rng.permutation(space)
        codes = np.resize(perm, k)  # unique names; repeats get a " (2)", " (3)" suffix
        names = []
        for i, c in enumerate(codes):
            c = int(c)
            a, c = c % sizes[0], c // sizes[0]
            b, c = c % sizes[1], c // sizes[1]
            f, c = c % sizes[2], c // sizes[2]
            pl = c % sizes[3]
            place = parts[3][pl]
            if jp:
                core = f"{place}{parts[0][a]}{parts[1][b]}"
                name = f"株式会社{core}" if parts[2][f] == "前" else f"{core}株式会社"
            else:
                core = " ".join(x for x in (parts[0][a], place, parts[1][b]) if x)
                name = f"{core} {parts[2][f]}"
            if i >= space:
                name = f"{name} ({i // space + 1})"
            names.append(name)
        out[m] = names
    return out


# ======================================================================================
# Tables
# ======================================================================================
def _frame(table: str, data: dict) -> pd.DataFrame:
    """A DataFrame with the contract's column order (``attr_*`` extras last)."""
    from cs_analysis.contract import spec

    names = spec(table).names()
    cols = [c for c in names if c in data] + sorted(c for c in data if c not in names)
    return pd.DataFrame({c: data[c] for c in cols})


def _accounts(b: _Book) -> pd.DataFrame:
    return _frame("accounts", {
        "account_id": _str(b.ids),
        "signup_date": _to_dates(b.signup),
        "account_name": _str(b.names),
        "segment": _str(np.asarray(SEGMENTS, dtype=object)[b.segment]),
        "plan": _str(np.asarray(_PLANS, dtype=object)[b.plan]),
        "region": _str(np.asarray(_REGIONS, dtype=object)[b.region]),
        "industry": _str(np.asarray(_INDUSTRIES, dtype=object)[b.industry]),
        "employees": b.employees.astype(np.int64),
        "csm_owner": _str(b.csm),
        "kickoff_date": _to_dates(b.kickoff),
        "touch_model": _str(b.touch),
    })


def _subscriptions(b: _Book, rng) -> pd.DataFrame:
    """Contract lines: one per annual term or per MRR level, add-ons, reactivations."""
    n = b.n
    seg_median = np.asarray(_EMP_MEDIAN)[b.segment]
    base = np.asarray(_PLAN_MRR)[b.plan] * (b.employees / seg_median) ** 0.2 * np.exp(
        0.2 * rng.normal(size=n))
    months = np.arange(0, 61)
    anniv = _add_months(b.signup[:, None], months[None, :])  # (n, 61) monthly renewals
    end = np.where(b.churn <= b.as_of, b.churn, _BIG)
    rows_acc, rows_start, rows_end, rows_mrr, rows_prod = [], [], [], [], []

    def line(i, s, e, m, prod):
        rows_acc.append(i)
        rows_start.append(s)
        rows_end.append(e)
        rows_mrr.append(round(float(m), -1) if m >= 100 else round(float(m)))
        rows_prod.append(prod)

    u = rng.random((n, 8))
    h = b.health
    p_up = np.clip(0.22 + 0.08 * h, 0.05, 0.5)
    p_down = np.clip(0.08 - 0.04 * h, 0.02, 0.3)
    for i in range(n):
        e = int(end[i])
        stop = min(e, b.as_of + 1)
        m = float(base[i])
        a = anniv[i]
        if b.annual[i]:
            k = 0
            while True:
                t0, t1 = int(a[12 * k]), int(a[12 * (k + 1)])
                if t1 >= stop:
                    line(i, t0, e, m, "Analytics")
                    break
                line(i, t0, t1, m, "Analytics")
                r = rng.random()
                if r < p_up[i]:
                    m *= rng.uniform(1.1, 1.5)
                elif r < p_up[i] + p_down[i]:
                    m *= rng.uniform(0.65, 0.9)
                if rng.random() < 0.12 * math.exp(0.3 * h[i]):  # mid-term seat add-on
                    s = t1 + int(rng.integers(30, 330))
                    if s < stop:
                        line(i, s, e, 0.2 * m, "Analytics")
                k += 1
        else:
            alive_m = int(np.searchsorted(a, stop, side="left"))  # renewals before stop
            k = rng.poisson(0.035 * max(alive_m - 1, 0))
            change_at = np.sort(rng.choice(np.arange(1, max(alive_m, 2)), size=min(
                k, max(alive_m - 1, 0)), replace=False)) if alive_m > 1 and k else []
            t0 = int(a[0])
            for c in change_at:
                t1 = int(a[c])
                line(i, t0, t1, m, "Analytics")
                if rng.random() < _sigmoid(0.8 * h[i] + 0.3):
                    m *= rng.uniform(1.15, 1.6)
                else:
                    m *= rng.uniform(0.6, 0.9)
                t0 = t1
            line(i, t0, e, m, "Analytics")
        if b.automation[i]:
            s = int(a[int(2 + u[i, 0] * 12)])
            if s < stop:
                cancel = e
                if u[i, 1] < 0.2:
                    later = a[(a > s) & (a < stop)]
                    if later.size:
                        cancel = int(later[int(u[i, 2] * later.size)])
                line(i, s, cancel, 0.3 * base[i], "Automation")
        if b.react[i] < _BIG:
            line(i, int(b.react[i]), _BIG, base[i] * (0.5 + 0.5 * u[i, 3]), "Analytics")
    acc = np.asarray(rows_acc, dtype=np.int64)
    start = np.asarray(rows_start, dtype=np.int64)
    stop_ = np.asarray(rows_end, dtype=np.int64)
    prod = np.asarray(rows_prod, dtype=object)
    order = np.lexsort((prod, start, acc))
    acc, start, stop_, prod = acc[order], start[order], stop_[order], prod[order]
    mrr = np.asarray(rows_mrr, dtype=float)[order]
    # contract terms: annual lines renew every 12 months from their start, monthly ones
    # every month; a line running at the as-of date renews next on its first anniversary
    # after it (scheduled, so it never moves the as-of date)
    term = np.where(b.annual[acc], 12, 1).astype(np.int64)
    k = np.maximum((_month_of(b.as_of) - _month_of(start)) // term, 0)
    for _ in range(3):  # the first anniversary strictly after the as-of date
        k = np.where(_add_months(start, k * term) <= b.as_of, k + 1, k)
    renew = np.where(stop_ > b.as_of, _add_months(start, k * term), _BIG)
    seats = np.where(prod == "Automation", 0, np.maximum(1, np.round(
        _seat_base(b)[acc] * mrr / base[acc]))).astype(np.int64)
    return _frame("subscriptions", {
        "account_id": _str(b.ids[acc]),
        "start_date": _to_dates(start),
        "mrr": mrr,
        "end_date": _to_dates(stop_),
        "product": _str(prod),
        "subscription_id": _str([f"S{k:07d}" for k in range(1, acc.size + 1)]),
        "renewal_date": _to_dates(renew),
        "term_months": term,
        "seats": seats,
    })


def _seat_base(b: _Book) -> np.ndarray:
    """Seats of each account's first contract line: its user pool / planted utilisation.

    Drawn from its own random stream, so the other tables do not change with it.
    """
    rng = np.random.default_rng([b.seed, 111])
    shelf = rng.random(b.n) < PLANTED["seat_shelfware_share"]
    lo, hi = PLANTED["seat_pool_utilisation"]
    slo, shi = PLANTED["seat_shelfware_utilisation"]
    util = np.where(shelf, rng.uniform(slo, shi, b.n), rng.uniform(lo, hi, b.n))
    return b.users / util


def _key_feature_day(b: _Book) -> np.ndarray:
    """First day each account may use the key feature (PLANTED["key_feature"]).

    Accounts late with it (mostly slow onboardings, ``key_feature_late_share``) start
    after day ``key_feature_landmark_days`` from signup, or never; the others at signup.
    Its own random stream: the same for every chunking of the events.
    """
    rng = np.random.default_rng([b.seed, 101])
    share = PLANTED["key_feature_late_share"]
    late = rng.random(b.n) < np.where(b.slow, share["slow onboarding"], share["on time"])
    never = rng.random(b.n) < PLANTED["key_feature_never_share"]
    after = PLANTED["key_feature_landmark_days"] + 1 + np.floor(
        rng.exponential(120.0, b.n)).astype(np.int64)
    return np.where(late, np.where(never, _BIG, b.signup + after), b.signup)


def _milestones(b: _Book, rng) -> pd.DataFrame:
    """Onboarding milestones between the clock start and value realized (or a stall)."""
    n = b.n
    ttv = np.where(b.stalled, rng.uniform(40, 120, n), (b.value_day - b.clock).astype(float))
    names = list(MILESTONES_SETUP) + ["integration_connected", "first_dashboard_created",
                                      MILESTONE_VALUE]
    lo = np.array([0.0, 0.10, 0.30, 0.30, 0.40])
    hi = np.array([0.30, 0.50, 0.85, 1.20, 0.90])
    frac = lo + (hi - lo) * rng.random((n, 5))
    days = b.clock[:, None] + frac * ttv[:, None]
    has = np.ones((n, 6), dtype=bool)
    has[:, 3] = rng.random(n) < 0.6  # integration_connected: not every account
    days = np.c_[days, np.where(b.stalled, np.nan, b.value_day.astype(float))]
    # a few accounts share a report before their data import is "done" (out of order)
    late = (~b.stalled) & (rng.random(n) < 0.04)
    days[late, 2] = b.value_day[late] + rng.uniform(3, 20, late.sum())
    # stalled accounts stop partway: keep only milestones reached before the stall point
    stall_point = b.clock + rng.uniform(0.1, 0.7, n) * ttv
    has[b.stalled] &= days[b.stalled] <= stall_point[b.stalled, None]
    has[:, 5] &= ~b.stalled
    acc = np.repeat(np.arange(n), 6)[has.ravel()]
    which = np.tile(np.arange(6), n)[has.ravel()]
    day = np.floor(days.ravel()[has.ravel()]).astype(np.int64)
    # duplicates: a milestone logged again a few days later
    dup = rng.random(acc.size) < 0.01
    acc = np.r_[acc, acc[dup]]
    which = np.r_[which, which[dup]]
    day = np.r_[day, day[dup] + rng.integers(1, 15, dup.sum())]
    keep = b.active_on(acc, day) & (day >= b.signup[acc]) & (day < b.end1[acc])
    acc, which, day = acc[keep], which[keep], day[keep]
    sec = _business_seconds(rng, day, _REGION_UTC_OFFSET[b.region[acc]])
    order = np.lexsort((sec, acc))
    return _frame("onboarding_milestones", {
        "account_id": _str(b.ids[acc[order]]),
        "milestone": _str(np.asarray(names, dtype=object)[which[order]]),
        "completed_at": _to_ts(sec[order]),
    })


@dataclass
class _People:
    acc: np.ndarray
    role: np.ndarray  # object
    left_day: np.ndarray  # _BIG if still there
    person_id: np.ndarray  # object


def _stakeholders(b: _Book, rng) -> tuple[pd.DataFrame, _People]:
    n = b.n
    seg = b.segment
    software = np.asarray(_INDUSTRIES)[b.industry] == "Software"
    second_owner = rng.random(n) < np.array([0.15, 0.4, 0.6])[seg] + 0.2 * software
    dm = rng.random(n) < np.array([0.3, 0.55, 0.75])[seg]
    heavy = rng.poisson(np.array([0.8, 1.5, 2.5])[seg])
    admin = rng.random(n) < 0.7
    heavy = np.minimum(heavy, 8 - 2 - second_owner - dm - admin)
    counts = np.c_[np.ones(n, int), dm, 1 + second_owner, heavy, admin]  # by _ROLES order
    total = counts.sum(1)
    acc = np.repeat(np.arange(n), total)
    role_idx = np.concatenate([np.repeat(np.arange(5), c) for c in counts]) if n else np.zeros(
        0, int)
    j = _ragged_rank(acc)
    m = acc.size
    p_tech = np.array([0.25, 0.3, 0.35, 0.4, 0.6])[role_idx] + 0.25 * software[acc]
    tech = rng.random(m) < p_tech
    # a second owner sits on the other side (business vs technical) of the first
    is_owner = role_idx == 2
    first_owner = is_owner & np.r_[True, (acc[1:] != acc[:-1]) | (role_idx[1:] != 2)
                                   | (role_idx[:-1] != 2)]
    prev_tech = np.r_[False, tech[:-1]]
    second = is_owner & ~first_owner
    tech[second] = ~prev_tech[second]
    domain = np.where(tech, "technical", "business").astype(object)
    roles = np.asarray(_ROLES, dtype=object)[role_idx]
    japanese = b.region[acc] == 0
    titles = np.empty(m, dtype=object)
    u = rng.random(m)
    for (role, dom), (en, jp) in _TITLES.items():
        sel = (roles == role) & (domain == dom)
        for lang, opts in ((True, jp), (False, en)):
            s = sel & (japanese == lang)
            titles[s] = np.asarray(opts, dtype=object)[(u[s] * len(opts)).astype(int)]
    names = np.where(
        japanese,
        _pick(rng, _JP_SURNAMES, m) + " " + _pick(rng, _JP_GIVEN, m),
        _pick(rng, _EN_GIVEN, m) + " " + _pick(rng, _EN_SURNAMES, m),
    )
    infl = np.clip(np.round(np.array([_INFLUENCE_MEAN[r] for r in _ROLES])[role_idx]
                            + rng.normal(0, 0.6, m)), 1, 5).astype(np.int64)
    sentiment = np.clip(np.round(0.9 * b.health[acc] + rng.normal(0, 0.8, m)), -2, 2).astype(
        np.int64)
    style_acc = rng.choice(3, n, p=[0.4, 0.25, 0.35])
    style_acc = np.where((b.region == 0) & (rng.random(n) < 0.3), 0, style_acc)
    style = np.asarray(["top_down", "bottom_up", "balanced"], dtype=object)[style_acc[acc]]
    # departures: the planted key departure, plus ordinary turnover of the others
    left = np.full(m, _BIG)
    key_idx = np.where(b.key_dep_role[acc] == 0, 0, 2)
    key = (role_idx == key_idx) & ((role_idx == 0) | first_owner)
    left[key] = b.key_dep_day[acc[key]]
    other = ~np.isin(role_idx, [0, 2])
    left[other] = b.signup[acc[other]] + 60 + np.floor(
        rng.exponential(365.25 / 0.1, other.sum())).astype(np.int64)
    left = np.where(left < b.end1[acc], left, _BIG)
    left_sec = np.where(left < _BIG,
                        _business_seconds(rng, np.minimum(left, b.as_of),
                                          _REGION_UTC_OFFSET[b.region[acc]]), np.nan)
    width = 2 if total.max(initial=0) < 100 else 3
    pid = np.array([f"{b.ids[a]}-P{k + 1:0{width}d}" for a, k in zip(acc, j, strict=True)],
                   dtype=object)
    frame = _frame("stakeholders", {
        "account_id": _str(b.ids[acc]),
        "person_id": _str(pid),
        "role": _str(roles),
        "name": _str(names),
        "title": _str(titles),
        "domain": _str(domain),
        "influence": infl,
        "sentiment": sentiment,
        "decision_style": _str(style),
        "left_at": _to_ts(left_sec),
    })
    return frame, _People(acc=acc, role=roles, left_day=left, person_id=pid)


def _tickets(b: _Book, rng) -> tuple[pd.DataFrame, dict]:
    """Support tickets: onboarding questions early, P1 incidents at a fixed rate."""
    acc_i, lo, hi = b.intervals()
    first = np.r_[True, acc_i[1:] != acc_i[:-1]]
    rate = 0.18 * b.users[acc_i] ** 0.35 * np.exp(-0.2 * b.health[acc_i]) / 30.4  # per day
    on_lo = np.where(first, np.maximum(lo, b.clock[acc_i]), lo)
    on_hi = np.where(first, np.minimum(hi, b.clock[acc_i] + 60), lo)
    on_len = np.maximum(on_hi - on_lo, 0)
    n_on = rng.poisson(rate * 3.0 * on_len)
    n_all = rng.poisson(rate * np.maximum(hi - lo - on_len, 0))
    # onboarding-window tickets, then the rest of the service time (window skipped)
    day_on = np.repeat(on_lo, n_on) + np.floor(rng.random(n_on.sum()) * np.repeat(on_len, n_on))
    rest_len = np.maximum(hi - lo - on_len, 0)
    day_all = np.repeat(lo, n_all) + np.floor(rng.random(n_all.sum())
                                              * np.repeat(rest_len, n_all))
    day_all = np.where(day_all >= np.repeat(on_lo, n_all), day_all + np.repeat(on_len, n_all),
                       day_all)
    acc = np.r_[np.repeat(acc_i, n_on), np.repeat(acc_i, n_all)]
    day = np.r_[day_on, day_all].astype(np.int64)
    onboarding = np.r_[np.ones(n_on.sum(), bool), np.zeros(n_all.sum(), bool)]
    sec = _business_seconds(rng, day, _REGION_UTC_OFFSET[b.region[acc]])
    k = acc.size
    cats_on = ("onboarding", "how_to", "integration", "bug", "access", "billing")
    cats_later = ("how_to", "bug", "integration", "performance", "billing", "access",
                  "onboarding", "feature_request")
    category = np.where(
        onboarding,
        np.asarray(cats_on, dtype=object)[rng.choice(6, k, p=[0.5, 0.2, 0.1, 0.08, 0.07,
                                                               0.05])],
        np.asarray(cats_later, dtype=object)[rng.choice(8, k, p=[0.3, 0.25, 0.12, 0.1, 0.08,
                                                                  0.08, 0.02, 0.05])],
    )
    priority = np.asarray(["P2", "P3", "P4"], dtype=object)[rng.choice(3, k,
                                                                       p=[0.15, 0.45, 0.40])]
    # P1 incidents (drawn with the book; only those while the account has service)
    p1_day = np.floor(b.p1_sec / 86400).astype(np.int64)
    keep = b.active_on(b.p1_acc, p1_day)
    pa_, ps = b.p1_acc[keep], b.p1_sec[keep]
    acc = np.r_[acc, pa_]
    sec = np.r_[sec, ps]
    category = np.r_[category, np.asarray(["bug", "performance", "integration"], dtype=object)[
        rng.choice(3, pa_.size, p=[0.5, 0.3, 0.2])]]
    priority = np.r_[priority, np.full(pa_.size, "P1", dtype=object)]
    k = acc.size
    product = np.where(category == "integration", "API",
                       np.where(b.automation[acc] & (rng.random(k) < 0.25), "Automation",
                                "Analytics")).astype(object)
    pr = np.searchsorted(["P1", "P2", "P3", "P4"], priority)
    first_h = np.exp(np.log(np.array([0.5, 2.0, 6.0, 16.0])[pr]) + 0.8 * rng.normal(size=k))
    res_d = np.exp(np.log(np.array([0.6, 2.0, 4.0, 7.0])[pr]) + 0.9 * rng.normal(size=k))
    first_at = sec + first_h * 3600
    res_at = first_at + res_d * 86400
    limit = (b.as_of + 1) * 86400.0 - 1
    stale = rng.random(k) < 0.01  # a few tickets nobody closed
    first_at = np.where(first_at <= limit, np.floor(first_at), np.nan)
    res_at = np.where((res_at <= limit) & ~stale & ~np.isnan(first_at), np.floor(res_at),
                      np.nan)
    rated = (~np.isnan(res_at)) & (rng.random(k) < 0.35)
    csat = np.clip(np.round(4.1 - 0.35 * np.log1p(res_d) + 0.4 * b.health[acc]
                            + rng.normal(0, 0.8, k)), 1, 5)
    csat = np.where(rated, csat, np.nan)
    order = np.lexsort((acc, sec))
    ids = np.array([f"T{i:07d}" for i in range(1, k + 1)], dtype=object)
    o = order
    frame = _frame("support_tickets", {
        "ticket_id": _str(ids),
        "account_id": _str(b.ids[acc[o]]),
        "opened_at": _to_ts(sec[o]),
        "first_response_at": _to_ts(first_at[o]),
        "resolved_at": _to_ts(res_at[o]),
        "priority": _str(priority[o]),
        "product": _str(product[o]),
        "category": _str(category[o]),
        "csat": csat[o],
    })
    rated_o = rated[o]
    info = {"acc": acc[o][rated_o], "resolved": res_at[o][rated_o], "csat": csat[o][rated_o]}
    return frame, info


def _comments(rng, tone_neg, japanese, themes) -> np.ndarray:
    """One comment per row from the (theme, tone, language) templates."""
    k = themes.size
    out = np.empty(k, dtype=object)
    u = rng.random(k)
    for t_i, theme in enumerate(THEMES):
        for neg in (True, False):
            en, jp = _COMMENTS[(theme, "neg" if neg else "pos")]
            for lang, opts in ((True, jp), (False, en)):
                s = (themes == t_i) & (tone_neg == neg) & (japanese == lang)
                out[s] = np.asarray(opts, dtype=object)[(u[s] * len(opts)).astype(int)]
    return out


def _surveys(b: _Book, rng, people: _People, ticket_info: dict) -> pd.DataFrame:
    """NPS waves (with driver ratings), CES after onboarding, CSAT after support tickets."""
    japanese_acc = np.array([isinstance(x, str) and ("株式会社" in x) for x in b.names])
    parts = []
    # -- NPS: quarterly waves, mid-quarter ---------------------------------------------
    first_q = _month_of(_day(DEMO_START))
    last = _month_of(b.as_of)
    weights = PLANTED["nps_driver_weights"]
    role_p = {"executive sponsor": 0.15, "decision maker": 0.2, "owner": 0.45,
              "heavy user": 0.4, "admin": 0.3}
    p_resp = np.array([role_p[r] for r in people.role])
    for mq in range(first_q + 1, last + 1, 3):
        wave_day = int(_month_start(mq)) + 14
        q_end = int(_month_start(mq + 2)) - 1
        if wave_day > b.as_of:
            break
        a = people.acc
        ok = (b.active_on(a, np.full(a.size, wave_day)) & (wave_day - b.signup[a] >= 45)
              & (people.left_day > wave_day) & (rng.random(a.size) < p_resp))
        idx = np.flatnonzero(ok)
        day = wave_day + np.floor(rng.exponential(4.0, idx.size)).astype(np.int64)
        again = rng.random(idx.size) < 0.05  # a few answer twice in the wave
        idx = np.r_[idx, idx[again]]
        day = np.r_[day, day[again] + rng.integers(7, 30, again.sum())]
        a = people.acc[idx]
        ok = (day <= min(q_end, b.as_of)) & b.active_on(a, day) & (people.left_day[idx] > day)
        idx, day, a = idx[ok], day[ok], a[ok]
        k = idx.size
        attrs = {}
        score = np.full(k, PLANTED["nps_intercept"])
        for name, w in weights.items():
            v = np.clip(np.round(3.0 + _ATTR_PER_HEALTH * b.health[a]
                                 + rng.normal(0, 0.6, k)), 1, 5)
            attrs[name] = v
            score += w * v
        score = np.clip(np.round(score + rng.normal(0, PLANTED["nps_noise_sd"], k)), 0, 10)
        parts.append(dict(acc=a, person=idx, day=day, survey="nps", score=score,
                          touchpoint="periodic", attrs=attrs))
    # -- CES after onboarding (value realized) --------------------------------------------
    owner_idx = np.flatnonzero(people.role == "owner")
    first_owner = np.full(b.n, -1)
    first_owner[people.acc[owner_idx[::-1]]] = owner_idx[::-1]
    vd = b.value_day
    cand = np.flatnonzero((vd < _BIG) & (rng.random(b.n) < 0.6))
    day = vd[cand] + rng.integers(1, 11, cand.size)
    ok = (day <= b.as_of) & b.active_on(cand, day)
    cand, day = cand[ok], day[ok]
    person = first_owner[cand]
    ok = people.left_day[person] > day
    cand, day, person = cand[ok], day[ok], person[ok]
    ces = np.clip(np.round(5.3 + 0.5 * b.health[cand] - 1.2 * b.slow[cand]
                           + rng.normal(0, 0.9, cand.size)), 1, 7)
    parts.append(dict(acc=cand, person=person, day=day, survey="ces", score=ces,
                      touchpoint="onboarding", attrs={}))
    # -- CSAT after support tickets -----------------------------------------------------
    t_acc = ticket_info["acc"]
    sec = ticket_info["resolved"] + rng.uniform(1800, 2 * 86400, t_acc.size)
    day = np.floor(sec / 86400).astype(np.int64)
    # respondent: a current admin / heavy user / owner of the account, chosen at random
    order = np.lexsort((rng.random(people.acc.size), people.acc))
    pool = order[np.isin(people.role[order], ["admin", "heavy user", "owner"])]
    pool_acc = people.acc[pool]
    start = np.searchsorted(pool_acc, t_acc, side="left")
    count = np.searchsorted(pool_acc, t_acc, side="right") - start
    has = count > 0
    pick = np.where(has, start + np.floor(rng.random(t_acc.size) * np.maximum(count, 1)), 0)
    person = pool[pick.astype(np.int64)]
    ok = has & (day <= b.as_of) & b.active_on(t_acc, day) & (people.left_day[person] > day)
    parts.append(dict(acc=t_acc[ok], person=person[ok], day=day[ok], survey="csat",
                      score=ticket_info["csat"][ok], touchpoint="support", attrs={},
                      sec=sec[ok]))

    acc = np.concatenate([p["acc"] for p in parts])
    person = np.concatenate([p["person"] for p in parts])
    day = np.concatenate([p["day"] for p in parts])
    survey = np.concatenate([np.full(p["acc"].size, p["survey"], dtype=object) for p in parts])
    touch = np.concatenate([np.full(p["acc"].size, p["touchpoint"], dtype=object)
                            for p in parts])
    score = np.concatenate([p["score"] for p in parts]).astype(float)
    sec = _business_seconds(rng, day, _REGION_UTC_OFFSET[b.region[acc]])
    is_csat = survey == "csat"
    sec[is_csat] = np.floor(parts[-1]["sec"])
    k = acc.size
    attrs = {}
    for name in weights:
        col = np.full(k, np.nan)
        off = 0
        for p in parts:
            m = p["acc"].size
            if name in p["attrs"]:
                col[off:off + m] = p["attrs"][name]
            off += m
        attrs[name] = col
    # -- comments -------------------------------------------------------------------------
    category = np.where(score <= 6, "detractor", np.where(score >= 9, "promoter", "passive"))
    theme = np.full(k, -1)
    tone_neg = np.zeros(k, dtype=bool)
    nps = survey == "nps"
    for cat, probs in _THEME_P.items():
        s = nps & (category == cat)
        theme[s] = rng.choice(len(THEMES), s.sum(), p=probs)
        tone_neg[s] = (cat == "detractor") | ((cat == "passive") & (rng.random(s.sum()) < 0.5))
    ces = survey == "ces"
    theme[ces] = THEMES.index("onboarding")
    tone_neg[ces] = score[ces] <= 4
    theme[is_csat] = THEMES.index("support")
    tone_neg[is_csat] = score[is_csat] <= 3
    p_comment = np.select([nps, ces], [0.5, 0.3], 0.25)
    has_comment = (rng.random(k) < p_comment) & (theme >= 0)
    has_comment &= ~(ces & (score == 5)) & ~(is_csat & (score == 4))  # neutral: no comment
    japanese = japanese_acc[acc] & (rng.random(k) < 0.95)
    comment = np.full(k, None, dtype=object)
    comment[has_comment] = _comments(rng, tone_neg[has_comment], japanese[has_comment],
                                     theme[has_comment])
    # some detractors and promoters mention a second theme
    two = has_comment & nps & (category != "passive") & (rng.random(k) < 0.15)
    theme2 = np.where(two, -1, -1)
    for cat in ("detractor", "promoter"):
        s = two & (category == cat)
        theme2[s] = rng.choice(len(THEMES), s.sum(), p=_THEME_P[cat])
    two &= theme2 != theme
    if two.any():
        extra = _comments(rng, tone_neg[two], japanese[two], theme2[two])
        sep = np.where(japanese[two], "", " ")
        comment[two] = comment[two] + sep + extra
    order = np.lexsort((person, acc, sec))
    ids = np.array([f"R{i:07d}" for i in range(1, k + 1)], dtype=object)
    data = {
        "response_id": _str(ids),
        "account_id": _str(b.ids[acc[order]]),
        "survey": _str(survey[order]),
        "score": score[order],
        "responded_at": _to_ts(sec[order]),
        "respondent_id": _str(people.person_id[person[order]]),
        "respondent_role": _str(people.role[person[order]]),
        "touchpoint": _str(touch[order]),
        "comment": _str(comment[order]),
    }
    for name, col in attrs.items():
        data[name] = col[order]
    return _frame("survey_responses", data)


def _quarter_ends(first_day: int, last_day: int) -> np.ndarray:
    months = np.arange(_month_of(first_day), _month_of(last_day) + 2)
    ends = _month_start(months[1:]) - 1
    q = (months[:-1] % 12) % 3 == 2
    ends = ends[q]
    return ends[(ends >= first_day) & (ends <= last_day)]


def _health_inputs(b: _Book, rng) -> pd.DataFrame:
    """Quarterly CSM ratings: latent health, and a drop before an upcoming churn."""
    hp = PLANTED["health_predicts_renewal"]
    dates = _quarter_ends(_day(DEMO_START), b.as_of)
    acc = np.repeat(np.arange(b.n), dates.size)
    day = np.tile(dates, b.n)
    ok = b.active_on(acc, day) & (day - b.signup[acc] >= 30)
    acc, day = acc[ok], day[ok]
    k = acc.size
    soon = (b.churn[acc] > day) & (b.churn[acc] <= day + hp["horizon_days"]) & (
        b.churn[acc] <= b.as_of)
    raw = (3.2 + hp["rating_per_health_sd"] * b.health[acc] - hp["rating_drop_before_churn"]
           * soon + rng.normal(0, hp["rating_noise_sd"], k))
    rating = np.clip(np.round(raw), 1, 5).astype(np.int64)
    japanese = b.region[acc] == 0
    note = np.empty(k, dtype=object)
    u = rng.random(k)
    for r, (en, jp) in _HEALTH_NOTES.items():
        for lang, opts in ((True, jp), (False, en)):
            s = (rating == r) & (japanese == lang)
            note[s] = np.asarray(opts, dtype=object)[(u[s] * len(opts)).astype(int)]
    note[rng.random(k) < 0.4] = None
    return _frame("health_inputs", {
        "account_id": _str(b.ids[acc]),
        "as_of": _to_dates(day),
        "csm_rating": rating,
        "note": _str(note),
    })


def _activities(b: _Book, rng) -> pd.DataFrame:
    """CS touches: kickoff, training, QBRs, health checks, webinars, campaign emails."""
    rows = []  # (acc, day, activity, outcome)
    a = np.arange(b.n)
    has = (b.kickoff < _BIG)
    rows.append((a[has], b.kickoff[has], "kickoff", np.full(has.sum(), "completed", object)))
    has = b.trained & (b.training_day <= b.as_of)
    rows.append((a[has], b.training_day[has], "training",
                 np.full(has.sum(), "completed", object)))
    for touch, activity, every in (("high", "qbr", 91), ("low", "health_check", 120)):
        sel = np.flatnonzero(b.touch == touch)
        kmax = (b.as_of - b.signup[sel]) // every
        acc = np.repeat(sel, kmax)
        k = _ragged_rank(acc) + 1
        day = b.signup[acc] + k * every + rng.integers(-10, 11, acc.size)
        p_ok = _sigmoid(1.8 + 0.8 * b.health[acc])
        u = rng.random(acc.size)
        outcome = np.where(u < p_ok, "completed",
                           np.where(u < p_ok + (1 - p_ok) / 2, "rescheduled", "no_show"))
        rows.append((acc, day, activity, outcome.astype(object)))
    # monthly webinars (low and tech touch) and bi-monthly campaign emails (tech touch)
    months = np.arange(_month_of(_day(DEMO_START)), _month_of(b.as_of) + 1)
    for touch_set, activity, month_step, day_of_month, p in (
        (("low", "tech"), "webinar", 1, 17, 0.12),
        (("tech",), "campaign_email", 2, 9, 1.0),
    ):
        sel = np.flatnonzero(np.isin(b.touch, touch_set))
        ms = months[::month_step]
        acc = np.repeat(sel, ms.size)
        day = np.tile(_month_start(ms) + day_of_month, sel.size)
        ok = b.active_on(acc, day) & (rng.random(acc.size) < p * np.exp(0.3 * b.health[acc]))
        acc, day = acc[ok], day[ok]
        u = rng.random(acc.size)
        if activity == "webinar":
            outcome = np.where(u < 0.7, "attended", "registered_no_show")
        else:
            p_open = _sigmoid(-0.3 + 0.6 * b.health[acc])
            outcome = np.where(u < 0.25 * p_open, "clicked",
                               np.where(u < p_open, "opened", "not_opened"))
        rows.append((acc, day, activity, outcome.astype(object)))
    acc = np.concatenate([r[0] for r in rows])
    day = np.concatenate([r[1] for r in rows]).astype(np.int64)
    activity = np.concatenate([np.full(r[0].size, r[2], dtype=object) for r in rows])
    outcome = np.concatenate([r[3] for r in rows])
    ok = b.active_on(acc, day)
    acc, day, activity, outcome = acc[ok], day[ok], activity[ok], outcome[ok]
    sec = _business_seconds(rng, day, _REGION_UTC_OFFSET[b.region[acc]])
    human = np.isin(activity, ["kickoff", "training", "qbr", "health_check"])
    owner = np.where(
        human & (b.csm[acc] != None),  # noqa: E711 (object array comparison)
        b.csm[acc],
        np.where(np.isin(activity, ["kickoff", "training"]), "Onboarding Team",
                 np.where(activity == "webinar", "CS Enablement", "CS Marketing")),
    ).astype(object)
    channel = b.touch[acc].copy()
    channel[(channel == "tech") & human] = "low"
    order = np.lexsort((sec, acc))
    o = order
    return _frame("cs_activities", {
        "account_id": _str(b.ids[acc[o]]),
        "activity": _str(activity[o]),
        "occurred_at": _to_ts(sec[o]),
        "owner": _str(owner[o]),
        "channel": _str(channel[o]),
        "outcome": _str(outcome[o]),
    })


def _feature_requests(b: _Book, rng, people: _People) -> pd.DataFrame:
    """Requests, more from detractor accounts; sometimes several people ask the same."""
    acc_i, lo, hi = b.intervals()
    rate = 0.35 / 365.25 * np.array([1.0, 1.5, 2.2])[b.segment[acc_i]] * np.where(
        b.nps_class[acc_i] == 0, 1.8, 1.0)
    cnt = rng.poisson(rate * (hi - lo))
    acc = np.repeat(acc_i, cnt)
    day = np.repeat(lo, cnt) + np.floor(rng.random(acc.size) * np.repeat(hi - lo, cnt)).astype(
        np.int64)
    k = acc.size
    theme = rng.choice(len(_REQUEST_THEMES), k, p=_REQUEST_THEME_P)
    japanese = b.region[acc] == 0
    title = np.empty(k, dtype=object)
    u = rng.random(k)
    for t_i, t in enumerate(_REQUEST_THEMES):
        en, jp = _REQUESTS[t]
        for lang, opts in ((True, jp), (False, en)):
            s = (theme == t_i) & (japanese == lang)
            title[s] = np.asarray(opts, dtype=object)[(u[s] * len(opts)).astype(int)]
    # the same request from another person of the account a few weeks later
    dup = rng.random(k) < 0.15
    acc = np.r_[acc, acc[dup]]
    day = np.r_[day, day[dup] + rng.integers(3, 60, dup.sum())]
    theme = np.r_[theme, theme[dup]]
    title = np.r_[title, title[dup]]
    ok = (day <= b.as_of) & b.active_on(acc, day)
    acc, day, theme, title = acc[ok], day[ok], theme[ok], title[ok]
    k = acc.size
    # a person of the account (any, still there)
    order = np.lexsort((rng.random(people.acc.size), people.acc))
    pacc = people.acc[order]
    start = np.searchsorted(pacc, acc, side="left")
    count = np.searchsorted(pacc, acc, side="right") - start
    pick = order[start + np.floor(rng.random(k) * count).astype(np.int64)]
    person = np.where(people.left_day[pick] > day, people.person_id[pick], None)
    touch = b.touch[acc]
    source_p = {"tech": (0.5, 0.5, 0.0, 0.0), "low": (0.3, 0.3, 0.4, 0.0),
                "high": (0.15, 0.2, 0.45, 0.2)}
    source = np.empty(k, dtype=object)
    for t, pr in source_p.items():
        s = touch == t
        source[s] = np.asarray(["survey", "ticket", "meeting", "roundtable"], dtype=object)[
            rng.choice(4, s.sum(), p=pr)]
    age = b.as_of - day
    decided = rng.random(k) > np.exp(-age / 200.0)
    status = np.where(decided, np.asarray(["planned", "shipped", "declined"], dtype=object)[
        rng.choice(3, k, p=[0.35, 0.35, 0.30])], "open").astype(object)
    status_day = np.where(decided, day + np.floor(rng.uniform(0.2, 1.0, k) * age), day)
    sec = _business_seconds(rng, day, _REGION_UTC_OFFSET[b.region[acc]])
    status_sec = np.where(decided, _business_seconds(rng, status_day, 0), sec)
    status_sec = np.maximum(status_sec, sec)
    order = np.lexsort((acc, sec))
    o = order
    ids = np.array([f"FR{i:06d}" for i in range(1, k + 1)], dtype=object)
    return _frame("feature_requests", {
        "request_id": _str(ids),
        "account_id": _str(b.ids[acc[o]]),
        "title": _str(title[o]),
        "created_at": _to_ts(sec[o]),
        "person_id": _str(person[o]),
        "source": _str(source[o]),
        "theme": _str(np.asarray(_REQUEST_THEMES, dtype=object)[theme[o]]),
        "status": _str(status[o]),
        "status_at": _to_ts(status_sec[o]),
    })


# ======================================================================================
# Usage events (per block of accounts, never all in memory)
# ======================================================================================
_EVENT_NAMES = tuple(EVENT_FEATURES)


def _event_block(b: _Book, seed: int, block: int, per_month: float, norm: float,
                 intervals=None, key_day=None):
    """Usage events of accounts ``[block * EVENT_BLOCK, (block + 1) * EVENT_BLOCK)``.

    Returns a pyarrow Table sorted by account and time, drawn from the block's own random
    stream (so chunking never changes the events).
    """
    import pyarrow as pa

    rng = np.random.default_rng([seed, 100, block])
    first, last = block * EVENT_BLOCK, min((block + 1) * EVENT_BLOCK, b.n)
    acc_i, lo, hi = b.intervals() if intervals is None else intervals
    sel = (acc_i >= first) & (acc_i < last)
    acc_i, lo, hi = acc_i[sel], lo[sel], hi[sel]
    first_iv = np.r_[True, acc_i[1:] != acc_i[:-1]] if acc_i.size else np.zeros(0, bool)
    m0, m1 = _month_of(lo), _month_of(hi - 1)
    nm = m1 - m0 + 1
    iv = np.repeat(np.arange(acc_i.size), nm)
    k = _ragged_rank(iv)
    month = m0[iv] + k
    acc = acc_i[iv]
    start = np.maximum(_month_start(month), lo[iv])
    stop = np.minimum(_month_start(month + 1), hi[iv])
    days_in = (_month_start(month + 1) - _month_start(month)).astype(float)
    mu = (per_month * (b.users[acc] ** 0.8) * np.exp(0.3 * b.health[acc]) / norm
          * (stop - start) / days_in)
    mu *= np.select([k == 0, k == 1], [0.5, 0.8], 1.0)  # ramp-up
    churned = (b.churn[acc] <= b.as_of) & first_iv[iv]
    before = _month_of(b.churn[acc] - 1) - month
    decline = np.asarray(PLANTED["pre_churn_usage_factor"])[::-1]  # last month first
    fading = churned & (before >= 0) & (before < 3)
    pool = np.where(fading, decline[np.clip(before, 0, 2)], 1.0)  # users active, too
    mu = mu * pool
    dormant = (k > 0) & (rng.random(month.size) < b.dormancy[acc])
    mu = np.where(dormant | b.no_usage[acc], 0.0, mu)
    count = rng.poisson(mu)
    e_acc = np.repeat(acc, count)
    e_lo = np.repeat(start, count)
    e_len = np.repeat(stop - start, count)
    n = e_acc.size
    day = e_lo + np.floor(rng.random(n) * e_len).astype(np.int64)
    wd = (day + 3) % 7  # 0 = Monday
    shift = rng.random(n) < 0.8
    day = np.where(shift & (wd == 5), day - 1, np.where(shift & (wd == 6), day + 1, day))
    day = np.clip(day, e_lo, e_lo + e_len - 1)
    sec = _business_seconds(rng, day, _REGION_UTC_OFFSET[b.region[e_acc]])
    name = rng.choice(len(_EVENT_NAMES), n, p=_EVENT_P)
    wf, dash = _EVENT_NAMES.index("workflow_run"), _EVENT_NAMES.index("dashboard_viewed")
    shared, created = _EVENT_NAMES.index("report_shared"), _EVENT_NAMES.index("report_created")
    name = np.where((name == wf) & ~b.automation[e_acc], dash, name)
    name = np.where((name == shared) & (day < b.value_day[e_acc]), created, name)
    key = _EVENT_NAMES.index("integration_synced")
    key_day = _key_feature_day(b) if key_day is None else key_day
    name = np.where((name == key) & (day < key_day[e_acc]), _EVENT_NAMES.index("search"), name)
    e_pool = np.repeat(pool, count)
    user = np.floor(np.maximum(1.0, np.round(b.users[e_acc] * e_pool)) * rng.random(n) ** 2
                    ).astype(np.int64) + 1
    # sort by account, then time (one int64 key; stable, so ties keep their draw order)
    order = np.argsort((e_acc - first) * (1 << 40) + sec.astype(np.int64), kind="stable")
    e_acc, sec, name, user = e_acc[order], sec[order], name[order], user[order]
    local = e_acc - first
    account = pa.array(b.ids[first:last].tolist(), type=pa.string()).take(pa.array(local))
    # user ids ("A00042-U007"): each account's users spelled once, then looked up
    n_users = b.users[first:last]
    offset = np.r_[0, np.cumsum(n_users)[:-1]]
    user_ids = pa.array([f"{b.ids[first + i]}-U{u:03d}" for i in range(last - first)
                         for u in range(1, n_users[i] + 1)], type=pa.string())
    name_idx = pa.array(name)
    return pa.table({
        "account_id": account,
        "event_at": pa.array((sec * 1_000_000).astype(np.int64), type=pa.timestamp("us")),
        "user_id": user_ids.take(pa.array(offset[local] + user - 1)),
        "event_name": pa.array(list(_EVENT_NAMES), type=pa.string()).take(name_idx),
        "feature": pa.array([EVENT_FEATURES[e] for e in _EVENT_NAMES],
                            type=pa.string()).take(name_idx),
    })


def _usage_norm(b: _Book) -> float:
    """Normalizer so that ``per_month`` is the mean over accounts of a full month's rate."""
    return float(np.mean(b.users ** 0.8 * np.exp(0.3 * b.health)))


def _blocks(b: _Book, seed: int, per_month: float, chunk_accounts: int):
    """Yield ``(first_account, last_account, [pyarrow blocks])`` per chunk of accounts."""
    per_chunk = max(1, math.ceil(max(chunk_accounts, 1) / EVENT_BLOCK))
    n_blocks = math.ceil(b.n / EVENT_BLOCK)
    norm = _usage_norm(b)
    intervals = b.intervals()
    key_day = _key_feature_day(b)
    for c0 in range(0, n_blocks, per_chunk):
        blocks = range(c0, min(c0 + per_chunk, n_blocks))
        yield (c0 * EVENT_BLOCK, min((c0 + per_chunk) * EVENT_BLOCK, b.n),
               (_event_block(b, seed, k, per_month, norm, intervals, key_day)
                for k in blocks))


def usage_event_chunks(accounts: int = 300, seed: int = 42, as_of: dt.date = DEMO_AS_OF,
                       events_per_account_month: float | None = None,
                       chunk_accounts: int = 20_000) -> Iterator:
    """Usage events of the demo book, one pyarrow Table per chunk of accounts.

    The same events as :func:`generate` and :func:`build_demo` produce, whatever
    ``chunk_accounts`` is: each block of :data:`EVENT_BLOCK` accounts draws its events from
    its own random stream, and a chunk is a run of whole blocks (``chunk_accounts`` is
    rounded up to a multiple of the block size). Only one chunk is in memory at a time.

    Parameters
    ----------
    accounts, seed, as_of, events_per_account_month
        As for :func:`build_demo`.
    chunk_accounts : int
        Accounts per chunk.

    Yields
    ------
    pyarrow.Table
        Columns ``account_id, event_at, user_id, event_name, feature`` of the chunk's
        accounts, sorted by account and time.
    """
    import pyarrow as pa

    book = _simulate(accounts, seed, as_of)
    per_month = _per_month(events_per_account_month)
    for _, _, blocks in _blocks(book, seed, per_month, chunk_accounts):
        yield pa.concat_tables(list(blocks))


def _per_month(events_per_account_month) -> float:
    if events_per_account_month is None:
        return DEFAULT_EVENTS_PER_ACCOUNT_MONTH
    value = float(events_per_account_month)
    if not value > 0:
        raise ValueError(f"events_per_account_month must be > 0, got {events_per_account_month}")
    return value


# ======================================================================================
# Public API
# ======================================================================================
_SMALL_TABLES = ("accounts", "subscriptions", "onboarding_milestones", "survey_responses",
                 "support_tickets", "stakeholders", "health_inputs", "cs_activities",
                 "feature_requests")


def _small_tables(b: _Book, seed: int) -> dict[str, pd.DataFrame]:
    """Every table except usage events (each from its own random stream)."""
    def r(k):
        return np.random.default_rng([seed, k])

    stakeholders, people = _stakeholders(b, r(13))
    tickets, ticket_info = _tickets(b, r(15))
    return {
        "accounts": _accounts(b),
        "subscriptions": _subscriptions(b, r(11)),
        "onboarding_milestones": _milestones(b, r(12)),
        "survey_responses": _surveys(b, r(16), people, ticket_info),
        "support_tickets": tickets,
        "stakeholders": stakeholders,
        "health_inputs": _health_inputs(b, r(17)),
        "cs_activities": _activities(b, r(18)),
        "feature_requests": _feature_requests(b, r(19), people),
    }


def generate(accounts: int = 300, seed: int = 42, as_of: dt.date = DEMO_AS_OF,
             events_per_account_month: float | None = None,
             usage: bool = True) -> dict[str, pd.DataFrame]:
    """The demo book in memory: all ten tables of the contract as pandas DataFrames.

    Meant for small sizes (tests, examples); :func:`build_demo` writes large books to disk
    without holding the usage events in memory. Same generator, same data for the same
    arguments.

    Parameters
    ----------
    accounts : int
        Number of customer accounts.
    seed : int
        Random seed; the same seed gives identical tables.
    as_of : datetime.date
        The date up to which the data are complete; nothing is dated after it. Signups run
        from :data:`DEMO_START` to a week before it.
    events_per_account_month : float, optional
        Mean usage events per active account-month (default
        :data:`DEFAULT_EVENTS_PER_ACCOUNT_MONTH`).
    usage : bool
        Also generate ``usage_events`` (the slowest table); False leaves it out.

    Returns
    -------
    dict of str to pandas.DataFrame
        Canonical table name to frame, with the contract's column names: ids and text as
        ``str``, dates and timestamps as ``datetime64[us]`` (dates at midnight), counts as
        ``int64``, money and scores as ``float64``; missing values as NaN / NaT.
    """
    book = _simulate(int(accounts), int(seed), as_of)
    tables = _small_tables(book, int(seed))
    if usage:
        import pyarrow as pa

        per_month = _per_month(events_per_account_month)
        parts = [blk for _, _, blocks in _blocks(book, int(seed), per_month, book.n)
                 for blk in blocks]
        events = pa.concat_tables(parts).to_pandas()
        for c in ("account_id", "user_id", "event_name", "feature"):
            events[c] = events[c].astype("str")
        tables["usage_events"] = _frame("usage_events", {c: events[c] for c in events})
    from cs_analysis.contract import TABLE_NAMES

    return {name: tables[name] for name in TABLE_NAMES if name in tables}


def demo_workspace(path=None, **build):
    """Open the demo workspace, building it first if it is missing (explicit, for notebooks).

    Parameters
    ----------
    path : str or Path, optional
        Where the demo lives; default ``data/demo.duckdb``
        (:func:`cs_analysis.workspace.default_workspace_path`).
    **build
        Passed to :func:`build_demo` when the file has to be built.
    """
    from cs_analysis.workspace import default_workspace_path, open_workspace

    path = Path(path) if path is not None else default_workspace_path()
    if not path.exists():
        build_demo(path, **build)
    return open_workspace(path)


def build_demo(out=None, accounts: int | None = None, seed: int = 42, parquet_dir=None,
               progress: bool = False, as_of: dt.date = DEMO_AS_OF,
               events_per_account_month: float | None = None,
               chunk_accounts: int = 20_000) -> Path:
    """Write the demo workspace (DuckDB), optionally keeping every table as Parquet.

    The account-level tables are built in memory; usage events are generated per chunk of
    accounts and written as Parquet part files (``usage_events/part-00000.parquet``, ...),
    then loaded by :func:`cs_analysis.workspace.write_workspace` from a Parquet glob, so the
    events are never all in memory. The workspace stores the settings
    ``{"as_of": as_of, "currency": "USD", "timezone": "UTC"}``.

    Parameters
    ----------
    out : str or Path, optional
        Workspace file; default :func:`cs_analysis.workspace.default_workspace_path`
        (``data/demo.duckdb``). Written atomically (an existing file is replaced only when
        the new one is complete).
    accounts : int, optional
        Number of accounts (default :data:`DEFAULT_ACCOUNTS`).
    seed : int
        Random seed; the same seed gives identical tables, whatever ``chunk_accounts``.
    parquet_dir : str or Path, optional
        Also keep every table as Parquet here (``<table>.parquet``; usage events as
        ``usage_events/part-*.parquet``): the "Parquet + DuckDB" output. Without it the
        event parts go to a temporary folder that is removed afterwards.
    progress : bool
        Show progress bars.
    as_of : datetime.date
        The data's as-of date (default :data:`DEMO_AS_OF`).
    events_per_account_month : float, optional
        Usage volume (default :data:`DEFAULT_EVENTS_PER_ACCOUNT_MONTH`): about
        ``accounts × 14 × events_per_account_month`` events with the default as-of date,
        e.g. 3,000 × 40 → 1.7M (the default demo), 3,000 × 48 → 2.0M,
        30,000 × 48 → 19.5M, 100,000 × 43 → 58M.
    chunk_accounts : int
        Accounts per usage-event chunk (rounded up to whole blocks of
        :data:`EVENT_BLOCK`); memory grows with it, the data do not change.

    Returns
    -------
    pathlib.Path
        The workspace file.
    """
    import pyarrow.parquet as pq

    from cs_analysis.workspace import default_workspace_path, write_workspace

    out = Path(out) if out is not None else default_workspace_path()
    n = DEFAULT_ACCOUNTS if accounts is None else int(accounts)
    per_month = _per_month(events_per_account_month)
    out.parent.mkdir(parents=True, exist_ok=True)
    book = _simulate(n, int(seed), as_of)
    tables: dict = _small_tables(book, int(seed))
    keep = parquet_dir is not None
    root = Path(parquet_dir) if keep else Path(tempfile.mkdtemp(prefix=".demo-events-",
                                                                dir=out.parent))
    events_dir = root / "usage_events"
    try:
        if events_dir.exists():
            shutil.rmtree(events_dir)
        events_dir.mkdir(parents=True)
        chunks = list(_blocks(book, int(seed), per_month, chunk_accounts))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="usage events", unit="account")
        for i, (a0, a1, blocks) in enumerate(chunks):
            writer = None
            for tbl in blocks:
                if writer is None:
                    writer = pq.ParquetWriter(events_dir / f"part-{i:05d}.parquet", tbl.schema,
                                              compression="zstd")
                writer.write_table(tbl)
            if writer is not None:
                writer.close()
            if bar is not None:
                bar.update(a1 - a0)
        if bar is not None:
            bar.close()
        if keep:
            for name, frame in tables.items():
                frame.to_parquet(root / f"{name}.parquet", index=False)
        tables["usage_events"] = str(events_dir / "*.parquet")
        config = {"as_of": as_of.isoformat(), "currency": "USD", "timezone": "UTC"}
        write_workspace(out, tables, config=config, progress=progress)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return out
