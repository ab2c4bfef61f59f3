# ruff: noqa: E501  (a translation table reads best one entry per line)
"""English and Japanese. English text is the key; Japanese is looked up, English is the fallback.

The language comes from the ``seisan_lang`` cookie (set by the switch in the
header) or else from the browser's ``Accept-Language``.
"""

from __future__ import annotations

LANGUAGES = ("en", "ja")
DEFAULT = "en"

JA: dict[str, str] = {
    # chrome
    "Seisan": "精算",
    "Sign in": "サインイン",
    "Sign out": "サインアウト",
    "Access token": "アクセストークン",
    "Paste the token you were given (demo: demo-aiko).": "配布されたトークンを貼り付けてください（デモ: demo-aiko）。",
    "That token is not known.": "そのトークンは登録されていません。",
    "Signed in as {name}": "{name} としてサインイン中",
    "Language": "言語",
    "My receipts": "領収書",
    "Needs a receipt": "領収書が必要",
    "My claims": "経費精算",
    "Approvals": "承認",
    "Statements": "明細",
    "Payouts": "支払",
    "Charts": "グラフ",
    "Forbidden": "アクセスできません",
    "You are not allowed to see this page.": "このページを表示する権限がありません。",
    "Not found": "見つかりません",
    "There is nothing here, or it is not yours to see.": "存在しないか、表示する権限がありません。",
    "Refused": "受け付けられませんでした",
    "Service unavailable": "サービスを利用できません",
    "A service did not answer; try again in a moment.": "サービスが応答しませんでした。しばらくしてから再試行してください。",
    "The form expired; reload the page and try again.": "フォームの有効期限が切れました。再読み込みしてやり直してください。",
    "Back": "戻る",
    "Nothing here yet.": "まだありません。",
    # receipts
    "Capture a receipt": "領収書を撮影",
    "Take photo": "撮影する",
    "Choose files": "ファイルを選択",
    "Paid with": "支払方法",
    "Company card": "法人カード",
    "Personally": "立替",
    "Note": "メモ",
    "Upload": "アップロード",
    "Uploading…": "アップロード中…",
    "Uploaded": "アップロード完了",
    "Upload failed": "アップロード失敗",
    "Receipt": "領収書",
    "Status": "状態",
    "Merchant": "店名",
    "Date": "日付",
    "Total": "合計",
    "Tax": "税額",
    "Currency": "通貨",
    "Invoice number": "登録番号",
    "Uploaded at": "アップロード日時",
    "Review reasons": "確認が必要な理由",
    "Correct a field": "項目を修正",
    "Reason": "理由",
    "Save": "保存",
    "Saved.": "保存しました。",
    "Possible duplicate of": "重複の可能性",
    "Open": "開く",
    "Image": "画像",
    # statuses
    "processing": "読み取り中",
    "extracted": "読み取り済",
    "needs review": "要確認",
    "matched": "照合済",
    "claimed": "精算申請済",
    "deleted": "削除済",
    "unmatched": "未照合",
    "suggested": "照合候補",
    "declared missing": "紛失申告済",
    "submitted": "申請中",
    "approved": "承認済",
    "rejected": "却下",
    "payout pending": "支払処理中",
    "paid": "支払済",
    "created": "作成",
    "sending": "送金中",
    "sent": "送金済",
    "failed": "失敗",
    "cancelled": "取消",
    "returning": "返金処理中",
    "company card": "法人カード",
    "personal": "立替",
    # charges
    "Card charges without a receipt": "領収書のないカード利用",
    "Charge": "利用",
    "Card": "カード",
    "Declare the receipt missing": "領収書紛失を申告",
    "What was bought": "購入したもの",
    "Business purpose": "業務目的",
    "I declare this is true and sign it as myself.": "上記が事実であることを申告し、本人として署名します。",
    "Declare": "申告する",
    "Declared.": "申告しました。",
    # claims
    "Submit a claim": "精算を申請",
    "Personal receipts not yet claimed": "未申請の立替領収書",
    "Category": "費目",
    "Description": "説明",
    "Submit": "申請する",
    "Claim": "精算",
    "Claimant": "申請者",
    "Submitted at": "申請日時",
    "Policy findings": "規程チェック",
    "warning": "注意",
    "blocking": "不可",
    "Decided by": "決裁者",
    "Rejection reason": "却下理由",
    "Payout": "支払",
    "meals": "飲食",
    "travel": "交通",
    "lodging": "宿泊",
    "supplies": "消耗品",
    "other": "その他",
    # approvals
    "Claims waiting for approval": "承認待ちの精算",
    "Approve": "承認",
    "Reject": "却下",
    "Approved.": "承認しました。",
    "Rejected.": "却下しました。",
    "Lines": "明細行",
    # treasury
    "Statement": "明細",
    "Period": "期間",
    "Charges": "件数",
    "Matched": "照合済",
    "Suggested": "候補",
    "Unmatched": "未照合",
    "Declared": "申告済",
    "Close check": "締めチェック",
    "balanced": "一致",
    "open": "未完了",
    "difference": "差額",
    "Suggested matches": "照合候補",
    "Unmatched charges": "未照合の利用",
    "Score": "スコア",
    "Reasons": "理由",
    "Confirm": "確定",
    "Match by hand": "手動で照合",
    "Match": "照合する",
    "Confirmed.": "確定しました。",
    "Matched by hand.": "手動で照合しました。",
    "Receipt to match": "照合する領収書",
    "No receipt image": "領収書画像なし",
    "Cardholder": "カード保有者",
    "Payout runs": "支払バッチ",
    "Run payouts now": "支払を実行",
    "Run": "バッチ",
    "Employee": "従業員",
    "Amount": "金額",
    "Created": "作成日時",
    "Rail": "経路",
    "Failure": "失敗理由",
    "Match rate per statement": "明細ごとの照合率",
    "Spend by category": "費目別の支出",
    "Age of missing receipts": "領収書未提出の経過日数",
    "days": "日",
    "charges": "件",
    "Live": "ライブ",
    "Import a statement": "明細を取り込む",
    "Statement file": "明細ファイル",
    "CSV, OFX/QFX, Visa VCF, Mastercard CDF or Amex GL1025": "CSV、OFX/QFX、Visa VCF、Mastercard CDF、Amex GL1025",
    "Import": "取り込む",
    "Imported.": "取り込みました。",
    "Ask cardholders for missing receipts": "未提出の領収書を依頼",
    "Cardholders were asked for their receipts.": "カード保有者に領収書の提出を依頼しました。",
    "Link a test payout account": "テスト用の支払口座を連携",
    "Link": "連携する",
    "Account linked.": "口座を連携しました。",
    "Left out of this run": "今回の支払から除外",
    "yours: another approver decides": "ご自身の申請：他の承認者が決裁します",
}

_CATALOGUES = {"ja": JA}


def translate(lang: str, text: str, **values: object) -> str:
    """``text`` in ``lang`` (English when there is no translation), with ``{name}`` filled."""
    found = _CATALOGUES.get(lang, {}).get(text, text)
    return found.format(**values) if values else found


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's choice if valid, else the best of ``Accept-Language``, else English."""
    if cookie in LANGUAGES:
        return cookie
    best, best_q = DEFAULT, 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best
