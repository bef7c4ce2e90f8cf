"""Write the example exports and mapping files of ``data/mappings/``.

Two small, deterministic export sets, each with a ``mapping.yml`` that
``cs-analysis load`` reads:

``jp_example/``
    A Japanese SaaS company's exports as Excel on Japanese Windows saves them: CSV in
    CP932 with CRLF line ends, Japanese headers (顧客ID, 契約開始日, セグメント, ...) and
    values (中小企業, ハイタッチ, names such as 髙橋 and 山﨑, which Shift_JIS cannot encode
    but CP932 can), dates such as ``2024/4/1`` and ``2024/4/1 9:05`` in Asia/Tokyo time,
    money with thousands separators (``50,000``), ``9999/12/31`` meaning "no end date",
    and a survey comment spanning two lines.
``en_example/``
    An English mix: a UTF-8-with-BOM CSV with US dates (``04/01/2024``, named with
    ``date_format``), an ``.xlsx`` workbook whose header sits under a title row, a Parquet
    file with typed UTC timestamps, and CSVs with survey driver ratings (``attr_*``).

Run ``python data/mappings/make_examples.py`` to regenerate them in place; the tests
regenerate them into a temporary folder and compare.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

JP_MAPPING = """\
# 日本語のエクスポート (Excel で保存した CP932 の CSV) を cs_analysis の契約に対応づける例。
# cs-analysis validate --config data/mappings/jp_example/mapping.yml
workspace:
  timezone: Asia/Tokyo      # 日時は東京時間として読み、UTC で保存する
  currency: JPY
  survey_scales: {csat: [1, 5]}
tables:
  accounts:
    file: exports/顧客一覧.csv          # encoding は自動判定 (CP932)
    columns:
      account_id: 顧客ID
      account_name: 会社名
      signup_date: 契約開始日
      kickoff_date: キックオフ日
      segment: セグメント
      plan: プラン
      region: 地域
      industry: 業種
      employees: 従業員数
      csm_owner: 担当CSM
      touch_model: 支援区分
    values:
      segment: {中小企業: SMB, 中堅企業: Mid-Market, 大企業: Enterprise}
      touch_model: {ハイタッチ: high, ロータッチ: low, テックタッチ: tech}
  subscriptions:
    file: exports/契約一覧.csv
    encoding: cp932                     # 明示することもできる
    columns:
      subscription_id: 契約番号
      account_id: 顧客ID
      start_date: 開始日
      end_date: 終了日
      mrr: 月額(円)
      product: 製品
      renewal_date: 次回更新日
      term_months: 契約期間(月)
      seats: ライセンス数
    values:
      end_date: {"9999/12/31": null}    # 「終了日なし」は空 (契約継続中)
  usage_events:
    file: exports/利用ログ.csv
    columns:
      account_id: 顧客ID
      user_id: ユーザーID
      event_at: 日時
      event_name: イベント
      feature: 機能
  survey_responses:
    file: exports/アンケート回答.csv
    columns:
      response_id: 回答ID
      account_id: 顧客ID
      survey: 種別
      score: スコア
      responded_at: 回答日時
      respondent_id: 回答者ID
      respondent_role: 役割
      comment: コメント
    values:
      survey: {NPS: nps, 顧客満足度: csat}
  support_tickets:
    file: exports/問い合わせ.csv
    columns:
      ticket_id: 問い合わせ番号
      account_id: 顧客ID
      opened_at: 起票日時
      first_response_at: 初回回答日時
      resolved_at: 解決日時
      priority: 優先度
      category: カテゴリ
      csat: 満足度
  stakeholders:
    file: exports/関係者.csv
    columns:
      account_id: 顧客ID
      person_id: 人物ID
      role: 役割
      name: 氏名
      title: 役職
      domain: 領域
      influence: 影響度
      sentiment: 関係性
      decision_style: 意思決定
    values:
      domain: {ビジネス: business, 技術: technical}
      decision_style: {トップダウン: top_down, ボトムアップ: bottom_up, バランス: balanced}
"""

EN_MAPPING = """\
# An English export mix: CSV (UTF-8 with BOM, US dates), Excel and Parquet.
# cs-analysis validate --config data/mappings/en_example/mapping.yml
workspace:
  timezone: America/New_York   # naive timestamps are New York time, stored as UTC
  currency: USD
  survey_scales: {csat: [1, 5], ces: [1, 7]}
tables:
  accounts:
    file: exports/crm_accounts.csv
    date_format: "%m/%d/%Y"      # US month-first dates are never guessed
    columns:
      account_id: Account ID
      account_name: Account Name
      signup_date: Close Date
      segment: Segment
      plan: Plan
      region: Region
      industry: Industry
      employees: Employees
      csm_owner: CSM
      touch_model: Coverage
    values:
      touch_model: {High Touch: high, Low Touch: low, Tech Touch: tech}
  subscriptions:
    file: exports/billing.xlsx
    sheet: Subscriptions
    header_row: 3                # a title and a blank row sit above the header
    columns:
      subscription_id: Line ID
      account_id: Customer
      start_date: Start
      end_date: End
      mrr: MRR
      product: Product
      renewal_date: Renewal
      term_months: Term (months)
      seats: Seats
  usage_events:
    file: exports/product_events.parquet   # typed columns; event_at is UTC-aware
    columns:
      account_id: org_id
      user_id: user
      event_at: ts
      event_name: event
      feature: feature
  onboarding_milestones:
    file: exports/onboarding.csv
    columns:
      account_id: Account ID
      milestone: Milestone
      completed_at: Completed
  survey_responses:
    file: exports/surveys.csv
    columns:
      response_id: Response ID
      account_id: Account ID
      survey: Survey
      score: Score
      responded_at: Submitted At
      respondent_id: Contact ID
      respondent_role: Role
      touchpoint: Touchpoint
      comment: Comment
      attr_ease_of_use: Ease of use
      attr_support: Support quality
    values:
      survey: {NPS: nps, CSAT: csat, CES: ces}
  health_inputs:
    file: exports/billing.xlsx
    sheet: CSM Health
    columns:
      account_id: Customer
      as_of: Review Date
      csm_rating: Rating
      note: Note
  cs_activities:
    file: exports/activities.csv
    columns:
      account_id: Account ID
      activity: Type
      occurred_at: Date
      owner: Owner
      channel: Channel
      outcome: Outcome
  feature_requests:
    file: exports/feature_requests.csv
    columns:
      request_id: Key
      account_id: Account ID
      title: Summary
      created_at: Created
      person_id: Requester
      source: Source
      theme: Theme
      status: Status
      status_at: Updated
"""

JP_COMPANIES = ["髙橋商事", "山﨑工業", "青葉システム", "さくら物流", "東都製薬", "浪速フーズ",
                "北斗建設", "みなと銀行", "ひかり電機", "富士山ソフト", "瀬戸内観光", "杜の都病院"]
JP_PEOPLE = ["髙橋 一郎", "山﨑 花子", "佐藤 健", "鈴木 美咲", "田中 誠", "渡辺 由美"]
JP_CSMS = ["髙木 真理", "山﨑 翔", "中村 葵"]
JP_SEGMENTS = ["中小企業", "中堅企業", "大企業"]
JP_TOUCH = {"中小企業": "テックタッチ", "中堅企業": "ロータッチ", "大企業": "ハイタッチ"}


def _d(x: dt.date) -> str:
    """Japanese Excel style: 2024/4/1."""
    return f"{x.year}/{x.month}/{x.day}"


def _dt(x: dt.datetime) -> str:
    return f"{x.year}/{x.month}/{x.day} {x.hour}:{x.minute:02d}"


def _csv_bytes(rows: list[list], encoding: str, bom: bool = False) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    data = buf.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def jp_tables(rng: random.Random) -> dict[str, list[list]]:
    """The Japanese export set as rows (header first)."""
    accounts = [["顧客ID", "会社名", "契約開始日", "キックオフ日", "セグメント", "プラン", "地域",
                 "業種", "従業員数", "担当CSM", "支援区分", "備考"]]
    subs = [["契約番号", "顧客ID", "開始日", "終了日", "月額(円)", "製品", "次回更新日",
             "契約期間(月)", "ライセンス数"]]
    events = [["顧客ID", "ユーザーID", "日時", "イベント", "機能"]]
    surveys = [["回答ID", "顧客ID", "種別", "スコア", "回答日時", "回答者ID", "役割", "コメント"]]
    tickets = [["問い合わせ番号", "顧客ID", "起票日時", "初回回答日時", "解決日時", "優先度",
                "カテゴリ", "満足度"]]
    people = [["顧客ID", "人物ID", "役割", "氏名", "役職", "領域", "影響度", "関係性", "意思決定"]]
    start = dt.date(2024, 4, 1)
    for i, name in enumerate(JP_COMPANIES):
        aid = f"{i + 1:05d}"  # leading zeros must survive
        seg = JP_SEGMENTS[i % 3]
        signup = start + dt.timedelta(days=17 * i)
        kickoff = signup + dt.timedelta(days=rng.randint(3, 20))
        employees = {"中小企業": 40, "中堅企業": 600, "大企業": 4800}[seg] + rng.randint(0, 90)
        accounts.append([aid, name, _d(signup), _d(kickoff) if i % 5 else "", seg,
                         ["ライト", "スタンダード", "エンタープライズ"][i % 3],
                         ["関東", "関西", "九州"][i % 3], ["製造", "小売", "医療"][i % 3],
                         f"{employees:,}", JP_CSMS[i % 3], JP_TOUCH[seg], "〜 特記事項なし"])
        mrr = {"中小企業": 30_000, "中堅企業": 150_000, "大企業": 800_000}[seg]
        churned = i % 6 == 5
        end = signup + dt.timedelta(days=365) if churned else None
        renewal = "" if churned else _d(signup.replace(year=signup.year + 1))
        seats = {"中小企業": 10, "中堅企業": 120, "大企業": 1500}[seg] + i
        subs.append([f"C-{i + 1:04d}", aid, _d(signup), _d(end) if end else "9999/12/31",
                     f"{mrr:,}", "本体", renewal, "12", f"{seats:,}"])
        if i % 4 == 0:
            subs.append([f"C-{i + 1:04d}-2", aid, _d(signup + dt.timedelta(days=90)), "",
                         f"{mrr // 5:,}", "オプション", "", "1", ""])
        for k in range(rng.randint(2, 5)):
            t = dt.datetime.combine(signup, dt.time(9, 5)) + dt.timedelta(
                days=rng.randint(0, 200), hours=rng.randint(0, 9), minutes=rng.randint(0, 59))
            events.append([aid, f"u{i + 1:03d}-{k % 3}", _dt(t),
                           rng.choice(["ログイン", "レポート作成", "データ取込"]),
                           rng.choice(["ダッシュボード", "レポート", "連携"])])
        if i % 2 == 0:
            t = dt.datetime.combine(signup, dt.time(18, 30)) + dt.timedelta(days=90)
            comment = ("サポートが迅速でした。\n次は連携機能に期待します。" if i == 0
                       else rng.choice(["使いやすい", "設定が難しい", ""]))
            surveys.append([f"R{i + 1:04d}", aid, "NPS", str(rng.randint(3, 10)), _dt(t),
                            f"P{i + 1:03d}-1", "管理者", comment])
            surveys.append([f"R{i + 1:04d}-c", aid, "顧客満足度", str(rng.randint(2, 5)),
                            _dt(t + dt.timedelta(minutes=3)), f"P{i + 1:03d}-1", "管理者", ""])
        if i % 3 != 2:
            opened = dt.datetime.combine(signup, dt.time(10, 15)) + dt.timedelta(days=30)
            first = opened + dt.timedelta(hours=2)
            resolved = opened + dt.timedelta(days=1, hours=3) if i % 4 else None
            tickets.append([f"T-{i + 1:05d}", aid, _dt(opened), _dt(first),
                            _dt(resolved) if resolved else "", ["高", "中", "低"][i % 3],
                            rng.choice(["初期設定", "請求", "不具合"]),
                            str(rng.randint(3, 5)) if resolved else ""])
        for k, (role, dom) in enumerate([("決裁者", "ビジネス"), ("推進担当", "技術")]):
            people.append([aid, f"P{i + 1:03d}-{k + 1}", role, JP_PEOPLE[(i + k) % 6],
                           ["部長", "エンジニア"][k], dom, str(rng.randint(2, 5)),
                           str(rng.randint(-1, 2)),
                           ["トップダウン", "ボトムアップ", "バランス"][i % 3]])
    return {"顧客一覧": accounts, "契約一覧": subs, "利用ログ": events,
            "アンケート回答": surveys, "問い合わせ": tickets, "関係者": people}


def write_jp(folder: Path) -> Path:
    """Write ``jp_example`` (CP932 CSVs + mapping.yml) into ``folder``; returns the mapping."""
    rng = random.Random(20240401)
    exports = folder / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    for name, rows in jp_tables(rng).items():
        (exports / f"{name}.csv").write_bytes(_csv_bytes(rows, "cp932"))
    path = folder / "mapping.yml"
    path.write_text(JP_MAPPING, encoding="utf-8")
    return path


def write_en(folder: Path) -> Path:
    """Write ``en_example`` (CSV, xlsx, Parquet + mapping.yml) into ``folder``."""
    import openpyxl
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(7)
    exports = folder / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    n = 24
    start = dt.date(2024, 1, 8)
    ids = [f"ACME-{i + 1:03d}" for i in range(n)]
    signups = [start + dt.timedelta(days=11 * i) for i in range(n)]
    segs = ["SMB", "Mid-Market", "Enterprise"]
    touch = {"SMB": "Tech Touch", "Mid-Market": "Low Touch", "Enterprise": "High Touch"}
    accounts = [["Account ID", "Account Name", "Close Date", "Segment", "Plan", "Region",
                 "Industry", "Employees", "CSM", "Coverage", "Owner Email"]]
    for i, aid in enumerate(ids):
        seg = segs[i % 3]
        accounts.append([aid, f"Customer {i + 1} Inc.", signups[i].strftime("%m/%d/%Y"), seg,
                         ["Starter", "Pro", "Enterprise"][i % 3], ["NA", "EMEA", "APAC"][i % 3],
                         ["Software", "Retail", "Health"][i % 4 % 3],
                         str({"SMB": 30, "Mid-Market": 450, "Enterprise": 5200}[seg] + i),
                         ["Dana Ruiz", "Lee Park", "Sam Okafor"][i % 3], touch[seg],
                         f"owner{i}@example.com"])
    (exports / "crm_accounts.csv").write_bytes(_csv_bytes(accounts, "utf-8", bom=True))

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Subscriptions"
    ws.append(["Billing export (subscriptions)"])
    ws.append([])
    ws.append(["Line ID", "Customer", "Start", "End", "MRR", "Product", "Renewal",
               "Term (months)", "Seats"])
    for i, aid in enumerate(ids):
        mrr = {"SMB": 99.0, "Mid-Market": 1200.0, "Enterprise": 8500.0}[segs[i % 3]]
        end = dt.datetime.combine(signups[i] + dt.timedelta(days=365), dt.time()) \
            if i % 7 == 6 else None
        renewal = None if end else dt.datetime.combine(
            signups[i].replace(year=signups[i].year + 1), dt.time())
        ws.append([f"L{i + 1:04d}", aid, dt.datetime.combine(signups[i], dt.time()), end,
                   mrr, "Core", renewal, 12, 5 + 3 * i])
        if i % 5 == 0:
            ws.append([f"L{i + 1:04d}-A", aid, dt.datetime.combine(
                signups[i] + dt.timedelta(days=60), dt.time()), None, mrr * 0.25, "Add-on",
                None, 1, None])
    health = wb.create_sheet("CSM Health")
    health.append(["Customer", "Review Date", "Rating", "Note"])
    for i, aid in enumerate(ids[:12]):
        serial = (signups[i] + dt.timedelta(days=120) - dt.date(1899, 12, 30)).days
        health.append([aid, serial, 1 + (i * 3) % 5, "exec sponsor engaged" if i % 2 else None])
    fixed = dt.datetime(2024, 1, 1)
    wb.properties.created = wb.properties.modified = fixed
    wb.save(exports / "billing.xlsx")

    ev = {"org_id": [], "user": [], "ts": [], "event": [], "feature": []}
    for i, aid in enumerate(ids):
        for k in range(rng.randint(3, 8)):
            t = dt.datetime.combine(signups[i], dt.time(14, 0), tzinfo=dt.UTC) + dt.timedelta(
                days=rng.randint(0, 300), minutes=rng.randint(0, 600))
            ev["org_id"].append(aid)
            ev["user"].append(f"{aid}-u{k % 3}")
            ev["ts"].append(t)
            ev["event"].append(rng.choice(["login", "report_run", "import"]))
            ev["feature"].append(rng.choice(["dashboards", "reports", "integrations"]))
    table = pa.table({"org_id": pa.array(ev["org_id"], pa.string()),
                      "user": pa.array(ev["user"], pa.string()),
                      "ts": pa.array(ev["ts"], pa.timestamp("us", tz="UTC")),
                      "event": pa.array(ev["event"], pa.string()),
                      "feature": pa.array(ev["feature"], pa.string())})
    pq.write_table(table, exports / "product_events.parquet")

    onboarding = [["Account ID", "Milestone", "Completed"]]
    surveys = [["Response ID", "Account ID", "Survey", "Score", "Submitted At", "Contact ID",
                "Role", "Touchpoint", "Comment", "Ease of use", "Support quality"]]
    activities = [["Account ID", "Type", "Date", "Owner", "Channel", "Outcome"]]
    requests = [["Key", "Account ID", "Summary", "Created", "Requester", "Source", "Theme",
                 "Status", "Updated"]]
    for i, aid in enumerate(ids):
        base = dt.datetime.combine(signups[i], dt.time(9, 30))
        for k, ms in enumerate(["setup_done", "first_value"]):
            if i % 4 == 3 and k == 1:
                continue
            t = base + dt.timedelta(days=7 + 14 * k + rng.randint(0, 20))
            onboarding.append([aid, ms, t.strftime("%Y-%m-%d %H:%M")])
        for k, survey in enumerate(["NPS", "CSAT", "CES"]):
            if (i + k) % 2:
                continue
            score = {"NPS": rng.randint(0, 10), "CSAT": rng.randint(1, 5),
                     "CES": rng.randint(1, 7)}[survey]
            t = base + dt.timedelta(days=95, hours=k)
            surveys.append([f"S-{i + 1:03d}-{survey}", aid, survey, str(score),
                            t.strftime("%Y-%m-%dT%H:%M:%S"), f"{aid}-c1", "admin",
                            "onboarding_end" if k else "quarterly",
                            "Great, \"quick\" setup" if i == 0 else "",
                            str(rng.randint(1, 5)), str(rng.randint(1, 5)) if i % 3 else ""])
        activities.append([aid, "kickoff", (base + dt.timedelta(days=3)).strftime("%Y-%m-%d"),
                           ["Dana Ruiz", "Lee Park", "Sam Okafor"][i % 3],
                           ["tech", "low", "high"][i % 3], "done"])
        if i % 3 == 0:
            activities.append([aid, "qbr", (base + dt.timedelta(days=90)).strftime("%Y-%m-%d"),
                               "Sam Okafor", "high", "renewal discussed"])
            requests.append([f"FR-{i + 1}", aid, "Export to BI tool",
                             (base + dt.timedelta(days=40)).strftime("%Y-%m-%d %H:%M"),
                             f"{aid}-c1", "meeting", "integrations",
                             ["open", "planned", "shipped"][i % 3],
                             (base + dt.timedelta(days=70)).strftime("%Y-%m-%d %H:%M")])
    (exports / "onboarding.csv").write_bytes(_csv_bytes(onboarding, "utf-8"))
    (exports / "surveys.csv").write_bytes(_csv_bytes(surveys, "utf-8"))
    (exports / "activities.csv").write_bytes(_csv_bytes(activities, "utf-8"))
    (exports / "feature_requests.csv").write_bytes(_csv_bytes(requests, "utf-8"))
    path = folder / "mapping.yml"
    path.write_text(EN_MAPPING, encoding="utf-8")
    return path


def write_examples(folder: Path = HERE) -> dict[str, Path]:
    """Write both example sets under ``folder``; returns ``{name: mapping file}``."""
    folder = Path(folder)
    return {"jp_example": write_jp(folder / "jp_example"),
            "en_example": write_en(folder / "en_example")}


if __name__ == "__main__":
    for name, path in write_examples().items():
        print(f"{name}: {path}")
