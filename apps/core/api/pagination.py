"""Page-number pagination with a bounded, client-chosen page size; deep pages cost what the
first does (keys first, then the page's rows: ``apps/core/paging.py``)."""

from rest_framework import pagination

from apps.core.paging import IdFirstPaginator


class PageNumberPagination(pagination.PageNumberPagination):
    django_paginator_class = IdFirstPaginator
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 200
