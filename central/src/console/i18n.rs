//! The console's words in French (the default), Arabic (right to left) and English. Every string a
//! page shows goes through [`Tr::s`]; a key missing from the table shows as the key itself, and a
//! test fails on it.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Fr,
    Ar,
    En,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Fr, Lang::Ar, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::Ar => "ar",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == s)
    }

    pub fn dir(self) -> &'static str {
        if self == Lang::Ar {
            "rtl"
        } else {
            "ltr"
        }
    }

    /// The language's own name, for the language bar.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Fr => "Français",
            Lang::Ar => "العربية",
            Lang::En => "English",
        }
    }
}

/// A page's translator.
#[derive(Debug, Clone, Copy)]
pub struct Tr(pub Lang);

impl Tr {
    /// The text of `key` in this language.
    pub fn s(&self, key: &str) -> &'static str {
        match WORDS.iter().find(|(k, _)| *k == key) {
            Some((_, [fr, ar, en])) => match self.0 {
                Lang::Fr => fr,
                Lang::Ar => ar,
                Lang::En => en,
            },
            None => {
                tracing::warn!(key, "console text without a translation");
                "⟦untranslated⟧"
            }
        }
    }

    pub fn lang(&self) -> &'static str {
        self.0.code()
    }

    pub fn dir(&self) -> &'static str {
        self.0.dir()
    }

    /// A record status or issuance status in words.
    pub fn status(&self, status: &str) -> &'static str {
        match status {
            "verified" => self.s("st-verified"),
            "held" => self.s("st-held"),
            "rejected" => self.s("st-rejected"),
            "accepted" => self.s("st-accepted"),
            "issued" => self.s("st-issued"),
            "reenrol" => self.s("st-reenrol"),
            "awaiting" => self.s("st-awaiting"),
            "active" => self.s("st-active"),
            "suspended" => self.s("st-suspended"),
            "revoked" => self.s("st-revoked"),
            "sync" => self.s("kind-sync"),
            "usb" => self.s("kind-usb"),
            _ => self.s("st-unknown"),
        }
    }
}

/// `(key, [fr, ar, en])`.
pub const WORDS: &[(&str, [&str; 3])] = &[
    ("app", ["Tasjil · centre d'émission", "تسجيل · مركز الإصدار", "Tasjil · issuance centre"]),
    ("nav-overview", ["Vue d'ensemble", "نظرة عامة", "Overview"]),
    ("nav-stations", ["Stations", "المحطات", "Stations"]),
    ("nav-batches", ["Lots reçus", "الدفعات المستلمة", "Batches"]),
    ("nav-records", ["Dossiers", "الملفات", "Records"]),
    ("nav-access", ["Journal des accès", "سجل الاطلاع", "Access log"]),
    ("nav-roster", ["Registre des badges", "سجل الشارات", "Badge roster"]),
    ("logout", ["Se déconnecter", "تسجيل الخروج", "Log out"]),
    ("signed-in-as", ["Connecté :", "متصل باسم:", "Signed in:"]),
    ("login-title", ["Connexion du personnel", "دخول الموظفين", "Staff login"]),
    ("login-id", ["Identifiant", "المعرّف", "Staff id"]),
    ("login-password", ["Mot de passe", "كلمة المرور", "Password"]),
    ("login-code", ["Code à 6 chiffres de l'application d'authentification", "الرمز المكون من 6 أرقام من تطبيق المصادقة", "6-digit code from the authenticator app"]),
    ("login-submit", ["Se connecter", "دخول", "Log in"]),
    ("login-bad", ["Identifiant, mot de passe ou code incorrect.", "المعرّف أو كلمة المرور أو الرمز غير صحيح.", "Wrong staff id, password or code."]),
    ("login-locked", ["Compte verrouillé après 5 échecs : réessayez dans 15 minutes ou demandez à un administrateur.", "الحساب مقفل بعد 5 محاولات فاشلة: أعد المحاولة بعد 15 دقيقة أو اطلب من المسؤول.", "Account locked after 5 failed logins: try again in 15 minutes or ask an admin."]),
    ("login-disabled", ["Ce compte a été désactivé par un administrateur.", "عطّل المسؤول هذا الحساب.", "This account was disabled by an admin."]),
    ("login-expired", ["Le formulaire a expiré : recommencez.", "انتهت صلاحية النموذج: أعد المحاولة.", "The form expired: try again."]),
    ("no-keys", ["La console a besoin de la clé du centre (centre.key) dans le dossier de données.", "تحتاج الوحدة إلى مفتاح المركز (centre.key) في مجلد البيانات.", "The console needs the centre key (centre.key) in the data directory."]),
    ("ov-title", ["Vue d'ensemble", "نظرة عامة", "Overview"]),
    ("ov-today", ["Reçus aujourd'hui", "المستلمة اليوم", "Received today"]),
    ("ov-week", ["Reçus sur 7 jours", "المستلمة خلال 7 أيام", "Received in 7 days"]),
    ("ov-verified", ["Vérifiés", "تم التحقق منها", "Verified"]),
    ("ov-rejected", ["Refusés", "مرفوضة", "Rejected"]),
    ("ov-awaiting", ["En attente d'émission", "في انتظار الإصدار", "Awaiting issuance"]),
    ("ov-reenrol", ["À réenrôler", "تحتاج إعادة التسجيل", "Re-enrol needed"]),
    ("ov-per-station", ["Par station", "حسب المحطة", "Per station"]),
    ("col-station", ["Station", "المحطة", "Station"]),
    ("col-state", ["État", "الحالة", "State"]),
    ("col-last", ["Dernier contact", "آخر اتصال", "Last contact"]),
    ("col-records", ["Dossiers", "الملفات", "Records"]),
    ("col-waiting", ["En attente", "في الانتظار", "Waiting"]),
    ("col-rejects", ["Refus", "الرفض", "Rejects"]),
    ("col-id", ["Numéro d'enrôlement", "رقم التسجيل", "Enrolment id"]),
    ("col-seq", ["N°", "رقم", "Seq"]),
    ("col-received", ["Reçu le (UTC)", "تاريخ الاستلام (UTC)", "Received (UTC)"]),
    ("col-status", ["Statut", "الحالة", "Status"]),
    ("col-issuance", ["Émission", "الإصدار", "Issuance"]),
    ("col-when", ["Quand (UTC)", "متى (UTC)", "When (UTC)"]),
    ("col-kind", ["Canal", "القناة", "Channel"]),
    ("col-stored", ["Enregistrés", "محفوظة", "Stored"]),
    ("col-already", ["Déjà reçus", "مستلمة سابقا", "Already had"]),
    ("col-reasons", ["Motifs des refus", "أسباب الرفض", "Reasons"]),
    ("col-receipt", ["Reçu", "الإيصال", "Receipt"]),
    ("col-who", ["Qui", "من", "Who"]),
    ("col-action", ["Action", "الإجراء", "Action"]),
    ("col-reason", ["Motif", "السبب", "Reason"]),
    ("col-record", ["Dossier", "الملف", "Record"]),
    ("never", ["jamais", "أبدا", "never"]),
    ("none", ["—", "—", "—"]),
    ("kind-sync", ["réseau", "الشبكة", "network"]),
    ("kind-usb", ["clé USB", "مفتاح USB", "USB stick"]),
    ("receipt-signed", ["reçu signé remis", "إيصال موقّع", "signed receipt issued"]),
    ("st-verified", ["vérifié", "تم التحقق", "verified"]),
    ("st-held", ["retenu, en attente d'une décision du centre", "محتجز في انتظار قرار المركز", "held for a decision by central staff"]),
    ("st-rejected", ["refusé", "مرفوض", "rejected"]),
    ("st-accepted", ["accepté pour production", "مقبول للإنتاج", "accepted for production"]),
    ("st-issued", ["carte produite", "تم إنتاج البطاقة", "card produced"]),
    ("st-reenrol", ["réenrôlement nécessaire", "إعادة التسجيل ضرورية", "re-enrol needed"]),
    ("st-awaiting", ["en attente d'émission", "في انتظار الإصدار", "awaiting issuance"]),
    ("st-active", ["active", "نشطة", "active"]),
    ("st-suspended", ["suspendue", "موقوفة", "suspended"]),
    ("st-revoked", ["révoquée", "ملغاة", "revoked"]),
    ("st-unknown", ["inconnu", "غير معروف", "unknown"]),
    ("st-any", ["tous", "الكل", "any"]),
    ("stations-title", ["Stations", "المحطات", "Stations"]),
    ("stations-add", ["Enregistrer une station", "تسجيل محطة", "Register a station"]),
    ("stations-add-help", ["Collez le contenu de station.pub (écrit par « tasjil init » sur la station).", "الصق محتوى station.pub (الذي كتبه «tasjil init» على المحطة).", "Paste the contents of station.pub (written by “tasjil init” on the station)."]),
    ("stations-add-submit", ["Enregistrer", "تسجيل", "Register"]),
    ("stations-training", ["Station de formation ou de démonstration (tasjil init --simulation)", "محطة تدريب أو عرض (tasjil init --simulation)", "Training or demonstration station (tasjil init --simulation)"]),
    ("stations-training-mismatch", ["Ce fichier ne correspond pas à la case « station de formation » : une station de formation s'enregistre comme telle, une vraie station jamais.", "هذا الملف لا يطابق خانة «محطة تدريب»: تُسجَّل محطة التدريب بصفتها، والمحطة الحقيقية أبدا.", "This file does not match the “training station” box: a training station is registered as one, a real station never."]),
    ("stations-added", ["Station enregistrée.", "تم تسجيل المحطة.", "Station registered."]),
    ("stations-already", ["Cette station était déjà enregistrée avec cette clé.", "كانت هذه المحطة مسجلة بهذا المفتاح.", "This station was already registered with this key."]),
    ("stations-suspend", ["Suspendre", "إيقاف", "Suspend"]),
    ("stations-resume", ["Rétablir", "استئناف", "Resume"]),
    ("stations-revoke", ["Révoquer", "إلغاء", "Revoke"]),
    ("stations-reason", ["Motif (obligatoire pour révoquer)", "السبب (إلزامي للإلغاء)", "Reason (required to revoke)"]),
    ("stations-revoke-note", ["Une station révoquée est refusée à sa prochaine synchronisation ou clé USB ; ce qu'elle a déjà envoyé reste.", "تُرفض المحطة الملغاة عند المزامنة التالية أو مفتاح USB؛ ويبقى ما أرسلته من قبل.", "A revoked station is refused at its next sync or USB import; what it sent before stays."]),
    ("stations-done", ["État de la station modifié.", "تم تغيير حالة المحطة.", "Station state changed."]),
    ("admin-only", ["Réservé aux administrateurs.", "مخصص للمسؤولين.", "Admins only."]),
    ("batches-title", ["Lots reçus (réseau et clé USB)", "الدفعات المستلمة (الشبكة ومفتاح USB)", "Batches received (network and USB)"]),
    ("older", ["Plus anciens →", "← الأقدم", "Older →"]),
    ("records-title", ["Dossiers", "الملفات", "Records"]),
    ("records-note", ["Les listes ne montrent jamais de données personnelles.", "لا تعرض القوائم أي بيانات شخصية أبدا.", "Lists never show personal data."]),
    ("records-day", ["Jour de réception", "يوم الاستلام", "Day received"]),
    ("records-search", ["Chercher", "بحث", "Search"]),
    ("records-none", ["Aucun dossier ne correspond.", "لا يوجد ملف مطابق.", "No record matches."]),
    ("records-next", ["Page suivante →", "← الصفحة التالية", "Next page →"]),
    ("records-bulk", ["Statut d'émission des dossiers cochés", "حالة إصدار الملفات المحددة", "Issuance status for the ticked records"]),
    ("records-select", ["Choisir", "اختيار", "Select"]),
    ("record-title", ["Dossier", "الملف", "Record"]),
    ("record-envelope", ["Enveloppe signée (sans données personnelles)", "الظرف الموقّع (بدون بيانات شخصية)", "Signed envelope (no personal data)"]),
    ("record-kind", ["Type", "النوع", "Kind"]),
    ("record-officer", ["Agent", "العون", "Officer"]),
    ("record-captured", ["Capturé (heure de la station, UTC)", "وقت الالتقاط (ساعة المحطة، UTC)", "Captured (station clock, UTC)"]),
    ("record-quality", ["Qualité", "الجودة", "Quality"]),
    ("record-face-q", ["Visage", "الوجه", "Face"]),
    ("record-exceptions", ["Doigts absents ou blessés", "أصابع مفقودة أو مصابة", "Fingers missing or injured"]),
    ("record-below", ["Gardés sous le seuil", "محفوظة دون العتبة", "Kept below threshold"]),
    ("record-payload", ["Données scellées", "البيانات المختومة", "Sealed payload"]),
    ("record-history", ["Historique d'émission", "سجل الإصدار", "Issuance history"]),
    ("record-rejections", ["Refus antérieurs", "حالات الرفض السابقة", "Earlier refusals"]),
    ("open-title", ["Ouvrir les données personnelles", "فتح البيانات الشخصية", "Open the personal data"]),
    ("open-note", ["Chaque ouverture est inscrite au journal des accès (loi 09-08) : qui, quand, quel dossier, pourquoi.", "يُسجَّل كل فتح في سجل الاطلاع (القانون 09-08): من، متى، أي ملف، ولماذا.", "Every opening is written to the access log (law 09-08): who, when, which record, why."]),
    ("open-reason", ["Motif", "السبب", "Reason"]),
    ("open-detail", ["Précision (obligatoire pour « autre »)", "توضيح (إلزامي لـ«آخر»)", "Details (required for “other”)"]),
    ("open-submit", ["Ouvrir le dossier", "فتح الملف", "Open the record"]),
    ("open-nist", ["Télécharger la transaction ANSI/NIST-ITL", "تنزيل معاملة ANSI/NIST-ITL", "Download the ANSI/NIST-ITL transaction"]),
    ("open-need-reason", ["Indiquez un motif.", "اذكر السبب.", "Give a reason."]),
    ("open-viewer", ["Votre rôle (lecteur) ne permet pas d'ouvrir les dossiers.", "دورك (مطّلع) لا يسمح بفتح الملفات.", "Your role (viewer) cannot open records."]),
    ("reason-issuance", ["Contrôle avant émission de la carte", "التحقق قبل إصدار البطاقة", "Check before issuing the card"]),
    ("reason-quality", ["Contrôle qualité", "مراقبة الجودة", "Quality review"]),
    ("reason-citizen", ["Demande du citoyen (droit d'accès)", "طلب المواطن (حق الاطلاع)", "Citizen's request (right of access)"]),
    ("reason-legal", ["Réquisition judiciaire", "طلب قضائي", "Legal requisition"]),
    ("reason-other", ["Autre", "آخر", "Other"]),
    ("pd-title", ["Données personnelles — ouverture inscrite au journal", "البيانات الشخصية — فتح مسجل في السجل", "Personal data — opening logged"]),
    ("pd-logged", ["Inscrit au journal des accès, entrée n°", "مسجل في سجل الاطلاع، المدخل رقم", "Written to the access log, entry"]),
    ("pd-face", ["Photo", "الصورة", "Photo"]),
    ("pd-fingers", ["Empreintes digitales", "بصمات الأصابع", "Fingerprints"]),
    ("pd-signature", ["Signature (touchez pour rejouer le tracé)", "التوقيع (المس لإعادة عرض الخط)", "Signature (tap to replay the pen)"]),
    ("pd-demographics", ["Données d'état civil", "بيانات الحالة المدنية", "Demographics"]),
    ("pd-previous", ["Carte précédente (lue sur la puce)", "البطاقة السابقة (مقروءة من الشريحة)", "Previous card (read from its chip)"]),
    ("pd-bad-image", ["image illisible", "صورة غير مقروءة", "unreadable image"]),
    ("iss-title", ["Statut d'émission", "حالة الإصدار", "Issuance status"]),
    ("iss-status", ["Nouveau statut", "الحالة الجديدة", "New status"]),
    ("iss-reason", ["Motif (obligatoire pour un réenrôlement)", "السبب (إلزامي لإعادة التسجيل)", "Reason (required for re-enrolment)"]),
    ("iss-submit", ["Enregistrer le statut", "حفظ الحالة", "Save the status"]),
    ("iss-done", ["Statut enregistré ; il partira vers la station à sa prochaine synchronisation ou dans son prochain reçu USB.", "تم حفظ الحالة؛ ستصل إلى المحطة في المزامنة التالية أو في إيصال USB التالي.", "Status saved; it reaches the station at its next sync or in its next USB receipt."]),
    ("iss-not-verified", ["Seul un dossier vérifié peut recevoir un statut d'émission.", "لا يمكن منح حالة إصدار إلا لملف تم التحقق منه.", "Only a verified record can be given an issuance status."]),
    ("iss-role", ["Réservé aux émetteurs.", "مخصص لموظفي الإصدار.", "Issuers only."]),
    ("rr-photo", ["Photo non conforme", "صورة غير مطابقة", "Photo not compliant"]),
    ("rr-fingers", ["Empreintes inutilisables", "بصمات غير قابلة للاستعمال", "Fingers unusable"]),
    ("rr-signature", ["Signature illisible", "توقيع غير مقروء", "Signature unreadable"]),
    ("rr-data", ["Données d'état civil à corriger", "بيانات الحالة المدنية تحتاج تصحيحا", "Demographics to correct"]),
    ("access-title", ["Journal des accès aux données personnelles", "سجل الاطلاع على البيانات الشخصية", "Access log of personal data"]),
    ("access-export", ["Exporter (JSON)", "تصدير (JSON)", "Export (JSON)"]),
    ("access-ok", ["Chaîne et signatures vérifiées", "تم التحقق من السلسلة والتوقيعات", "Chain and signatures verified"]),
    ("access-bad", ["Le journal a été modifié", "تم تعديل السجل", "The log was altered"]),
    ("roster-title", ["Registre des badges du personnel de terrain", "سجل شارات الأعوان الميدانيين", "Roster of field staff badges"]),
    ("roster-note", ["Chaque modification émet une nouvelle version signée par la clé du centre ; les camions la reçoivent à leur prochaine synchronisation ou dans leur prochain reçu USB.", "كل تعديل يُصدر نسخة جديدة موقّعة بمفتاح المركز؛ تتسلمها الشاحنات في المزامنة التالية أو في إيصال USB التالي.", "Every change issues a new version signed with the centre's key; vans receive it at their next sync or in their next USB receipt."]),
    ("roster-version", ["Version", "النسخة", "Version"]),
    ("roster-issued", ["émise le (UTC)", "صدرت في (UTC)", "issued (UTC)"]),
    ("roster-entries", ["badges", "شارات", "badges"]),
    ("roster-empty", ["Aucune version du registre n'a encore été émise : ajoutez un premier badge.", "لم تصدر أي نسخة من السجل بعد: أضف أول شارة.", "No roster version has been issued yet: add a first badge."]),
    ("col-officer", ["Identifiant de l'agent", "معرّف العون", "Officer id"]),
    ("col-name", ["Nom", "الاسم", "Name"]),
    ("col-role", ["Rôle", "الدور", "Role"]),
    ("col-badge", ["Clé du badge", "مفتاح الشارة", "Badge key"]),
    ("col-stations", ["Stations", "المحطات", "Stations"]),
    ("col-valid-from", ["Valide du", "صالحة من", "Valid from"]),
    ("col-valid-until", ["au (dernier jour)", "إلى (آخر يوم)", "until (last day)"]),
    ("col-revocation", ["Révocation", "الإلغاء", "Revocation"]),
    ("role-officer", ["agent d'enrôlement", "عون تسجيل", "officer"]),
    ("role-supervisor", ["superviseur", "مشرف", "supervisor"]),
    ("all-stations", ["toutes", "كل المحطات", "all"]),
    ("no-end", ["sans fin", "بدون نهاية", "no end"]),
    ("roster-valid", ["valide", "صالحة", "valid"]),
    ("roster-revoked-on", ["révoqué le", "أُلغيت في", "revoked on"]),
    ("roster-revoke", ["Révoquer ce badge", "إلغاء هذه الشارة", "Revoke this badge"]),
    ("roster-revoke-reason", ["Motif (obligatoire)", "السبب (إلزامي)", "Reason (required)"]),
    ("roster-add", ["Ajouter un badge", "إضافة شارة", "Add a badge"]),
    ("roster-add-badge", ["Clé publique du badge (64 chiffres hexadécimaux, « public_key » de « tasjil badge status --json »)", "المفتاح العام للشارة (64 رقما سداسي عشري، «public_key» من «tasjil badge status --json»)", "Badge public key (64 hex digits, “public_key” from “tasjil badge status --json”)"]),
    ("roster-add-stations", ["Stations (séparées par des virgules, ou * pour toutes)", "المحطات (مفصولة بفواصل، أو * للكل)", "Stations (comma-separated, or * for all)"]),
    ("roster-add-from", ["Valide à partir du (vide : maintenant)", "صالحة ابتداء من (فارغ: الآن)", "Valid from (empty: now)"]),
    ("roster-add-until", ["Dernier jour de validité (vide : sans fin)", "آخر يوم صلاحية (فارغ: بدون نهاية)", "Last valid day (empty: no end)"]),
    ("roster-add-submit", ["Ajouter et émettre une nouvelle version", "إضافة وإصدار نسخة جديدة", "Add and issue a new version"]),
    ("roster-added", ["Badge ajouté : nouvelle version émise", "أُضيفت الشارة: صدرت نسخة جديدة", "Badge added: new version issued"]),
    ("roster-revoked", ["Badge révoqué : nouvelle version émise", "أُلغيت الشارة: صدرت نسخة جديدة", "Badge revoked: new version issued"]),
    ("roster-refused", ["Le registre n'a pas été modifié :", "لم يُعدَّل السجل:", "The roster was not changed:"]),
    ("roster-need-reason", ["indiquez pourquoi le badge est révoqué.", "اذكر سبب إلغاء الشارة.", "say why the badge is revoked."]),
    ("roster-need-name", ["indiquez l'identifiant et le nom de l'agent.", "اذكر معرّف العون واسمه.", "give the officer's id and name."]),
    ("roster-bad-key", ["la clé du badge doit faire 64 chiffres hexadécimaux (0-9, a-f).", "يجب أن يتكون مفتاح الشارة من 64 رقما سداسي عشري (0-9، a-f).", "the badge key must be 64 hex digits (0-9, a-f)."]),
    ("roster-need-stations", ["indiquez au moins une station, ou * pour toutes.", "اذكر محطة واحدة على الأقل، أو * للكل.", "name at least one station, or * for all."]),
    ("roster-bad-date", ["une date n'est pas lisible : écrivez-la AAAA-MM-JJ.", "تاريخ غير مقروء: اكتبه بصيغة YYYY-MM-DD.", "a date cannot be read: write it YYYY-MM-DD."]),
    ("roster-too-long", ["un champ dépasse 300 caractères.", "أحد الحقول يتجاوز 300 حرف.", "a field is longer than 300 characters."]),
    ("roster-bad-role", ["choisissez un rôle.", "اختر دورا.", "choose a role."]),
    ("held-title", ["Dossier retenu : décision du centre", "ملف محتجز: قرار المركز", "Held record: central staff's decision"]),
    ("held-note", ["Libérer le rend vérifié (il pourra être émis) ; le refuser le garde sans carte. La décision (qui, quand, pourquoi) est conservée et le verdict signé part vers la station.", "الإفراج يجعله متحققا منه (يمكن إصداره)؛ والرفض يبقيه بدون بطاقة. يُحفظ القرار (من، متى، لماذا) ويُرسل الحكم الموقّع إلى المحطة.", "Releasing makes it verified (it can be issued); rejecting keeps it without a card. The decision (who, when, why) is kept and the signed verdict goes to the station."]),
    ("held-reason", ["Motif de la décision (obligatoire)", "سبب القرار (إلزامي)", "Reason for the decision (required)"]),
    ("held-release", ["Libérer (vérifié)", "إفراج (متحقق منه)", "Release (verified)"]),
    ("held-reject", ["Refuser", "رفض", "Reject"]),
    ("held-admin-only", ["Seul un administrateur peut libérer ou refuser un dossier retenu.", "لا يمكن إلا للمسؤول الإفراج عن ملف محتجز أو رفضه.", "Only an admin can release or reject a held record."]),
    ("held-need-reason", ["Indiquez le motif de la décision.", "اذكر سبب القرار.", "Give the reason for the decision."]),
    ("held-released", ["Dossier libéré : il est vérifié ; le verdict signé partira vers la station à sa prochaine synchronisation ou dans son prochain reçu USB.", "تم الإفراج عن الملف: أصبح متحققا منه؛ سيصل الحكم الموقّع إلى المحطة في المزامنة التالية أو في إيصال USB التالي.", "Record released: it is verified; the signed verdict reaches the station at its next sync or in its next USB receipt."]),
    ("held-rejected", ["Dossier refusé ; le verdict signé et son motif partiront vers la station.", "تم رفض الملف؛ سيصل الحكم الموقّع وسببه إلى المحطة.", "Record rejected; the signed verdict and its reason go to the station."]),
    ("held-decision", ["Décision sur le dossier retenu", "القرار بشأن الملف المحتجز", "Decision on the held record"]),
    ("held-by-release", ["libéré par", "أفرج عنه", "released by"]),
    ("held-by-reject", ["refusé par", "رفضه", "rejected by"]),
    ("forbidden", ["Accès refusé : votre rôle ne le permet pas.", "رُفض الوصول: دورك لا يسمح بذلك.", "Forbidden: your role does not allow it."]),
    ("bad-csrf", ["Formulaire refusé (jeton de sécurité absent ou périmé) : rechargez la page.", "رُفض النموذج (رمز الأمان مفقود أو منتهٍ): أعد تحميل الصفحة.", "Form refused (security token missing or stale): reload the page."]),
    ("not-found", ["Introuvable.", "غير موجود.", "Not found."]),
    ("error", ["Erreur", "خطأ", "Error"]),
    ("back", ["Retour", "رجوع", "Back"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_translated_and_keys_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (key, words) in WORDS {
            assert!(seen.insert(*key), "key {key} twice");
            for w in words {
                assert!(!w.trim().is_empty(), "{key} has an empty translation");
            }
            // Arabic text must hold Arabic letters (not a copy of the French), except for marks.
            if !matches!(*key, "none" | "nav-stations") {
                assert!(
                    words[1]
                        .chars()
                        .any(|c| ('\u{0600}'..='\u{06FF}').contains(&c)),
                    "{key}: the Arabic text has no Arabic letter"
                );
            }
        }
    }
}
