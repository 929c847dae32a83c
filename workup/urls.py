from django.urls import path

from . import views, views_audit, views_export, views_print, views_versions

urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("search/", views.worklist_search, name="worklist_search"),
    path("healthz", views.healthz, name="healthz"),
    path("about/", views.about, name="about"),
    path("patients/new/", views.patient_new, name="patient_new"),
    path("patients/<int:patient_id>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:patient_id>/workups/open/", views.workup_open, name="workup_open"),
    path("workups/<int:workup_id>/", views.checklist, name="checklist"),
    path("workups/<int:workup_id>/summary/", views_print.summary, name="workup_summary"),
    path("workups/<int:workup_id>/summary.pdf", views_print.summary_pdf, name="workup_summary_pdf"),
    path("workups/<int:workup_id>/history/", views_audit.workup_history, name="workup_history"),
    path(
        "workups/<int:workup_id>/protocol-version/",
        views_versions.move_version,
        name="workup_move_version",
    ),
    path("workups/<int:workup_id>/fhir/", views_export.workup_fhir, name="workup_fhir"),
    path("workups/export.csv", views_export.workups_csv, name="workups_export_csv"),
    path(
        "workups/export-dictionary.csv",
        views_export.workups_dictionary,
        name="workups_export_dictionary",
    ),
    path("audit/", views_audit.audit_report, name="audit_report"),
    path("audit/export.csv", views_audit.audit_report_csv, name="audit_report_csv"),
    path("workups/<int:workup_id>/adult-pathway/", views.adult_pathway, name="adult_pathway"),
    path("workups/<int:workup_id>/steps/<slug:step_code>/", views.step_form, name="step_form"),
    path("workups/<int:workup_id>/steps/<slug:step_code>/mark/", views.step_mark, name="step_mark"),
    path(
        "workups/<int:workup_id>/steps/<slug:step_code>/unmark/",
        views.step_unmark,
        name="step_unmark",
    ),
]
