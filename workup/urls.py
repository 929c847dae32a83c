from django.urls import path

from workup.views import audit, export, patients, printing, status, versions, worklist, workup

urlpatterns = [
    path("", worklist.worklist, name="worklist"),
    path("search/", worklist.worklist_search, name="worklist_search"),
    path("healthz", status.healthz, name="healthz"),
    path("about/", status.about, name="about"),
    path("patients/new/", patients.patient_new, name="patient_new"),
    path("patients/<int:patient_id>/", patients.patient_detail, name="patient_detail"),
    path("patients/<int:patient_id>/workups/open/", patients.workup_open, name="workup_open"),
    path("workups/<int:workup_id>/", workup.checklist, name="checklist"),
    path("workups/<int:workup_id>/summary/", printing.summary, name="workup_summary"),
    path("workups/<int:workup_id>/summary.pdf", printing.summary_pdf, name="workup_summary_pdf"),
    path("workups/<int:workup_id>/history/", audit.workup_history, name="workup_history"),
    path(
        "workups/<int:workup_id>/protocol-version/",
        versions.move_version,
        name="workup_move_version",
    ),
    path("workups/<int:workup_id>/fhir/", export.workup_fhir, name="workup_fhir"),
    path("workups/export.csv", export.workups_csv, name="workups_export_csv"),
    path(
        "workups/export-dictionary.csv",
        export.workups_dictionary,
        name="workups_export_dictionary",
    ),
    path("audit/", audit.audit_report, name="audit_report"),
    path("audit/export.csv", audit.audit_report_csv, name="audit_report_csv"),
    path("workups/<int:workup_id>/adult-pathway/", workup.adult_pathway, name="adult_pathway"),
    path("workups/<int:workup_id>/steps/<slug:step_code>/", workup.step_form, name="step_form"),
    path(
        "workups/<int:workup_id>/steps/<slug:step_code>/mark/",
        workup.step_mark,
        name="step_mark",
    ),
    path(
        "workups/<int:workup_id>/steps/<slug:step_code>/unmark/",
        workup.step_unmark,
        name="step_unmark",
    ),
]
