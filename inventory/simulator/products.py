"""The products the simulated MCP servers front, and the teams that own portals and servers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRODUCTS", "TEAMS", "Product"]

TEAMS = (
    "sales",
    "engineering",
    "support",
    "finance",
    "marketing",
    "data",
    "security",
    "platform",
    "design",
    "legal",
    "ops",
    "research",
    "people",
    "growth",
)


@dataclass(frozen=True)
class Product:
    slug: str
    title: str
    open_world: bool  # files and databases are a closed world in MCP's annotation terms
    scope: tuple[str, ...]  # parameters every tool of the product needs, e.g. owner and repo
    nouns: tuple[tuple[str, tuple[str, ...]], ...]  # (singular noun, its writable fields)


# A product line: slug, title (underscores for spaces), scope parameters ("-": none), "closed" for a
# closed world. The indented lines under it: a noun and its writable fields.
_TABLE = """
github GitHub owner,repo
  issue title,body,labels,assignee
  pull_request title,body,base,head
  branch name,sha
  release tag_name,name,body
  comment body
gitlab GitLab project_id
  merge_request title,description,source_branch,target_branch
  pipeline ref,variables
  issue title,description,labels
  branch name,ref
  tag name,ref,message
jira Jira project_key
  issue summary,description,issue_type,priority,assignee
  comment body
  sprint name,goal,start_date
  board name,filter_id
  version name,release_date
confluence Confluence space_key
  page title,body,parent_id
  comment body
  attachment filename,media_type
  label name
  blogpost title,body
linear Linear team_id
  issue title,description,priority,assignee
  project name,description,target_date
  cycle name,start_date
  comment body
  label name,color
slack Slack workspace
  channel name,topic,is_private
  message channel,text,thread_ts
  user email,display_name
  reminder text,time
  bookmark channel,title,link
postgres PostgreSQL database,schema closed
  table name,columns
  view name,definition
  index name,table,columns
  extension name,version
  role name,login
filesystem Filesystem root closed
  file path,content
  directory path
  symlink path,target
  archive path,format
  snapshot path,label
notion Notion -
  page title,parent_id,content
  database title,properties
  block parent_id,content
  comment body
  user email
sentry Sentry organization_slug,project_slug
  issue status,assignee
  event event_id
  release version,ref
  alert_rule name,conditions
  team slug,name
stripe Stripe -
  customer email,name,metadata
  invoice customer,amount,currency
  subscription customer,price
  refund payment_intent,amount
  payment_intent amount,currency,customer
gdrive Google_Drive drive_id
  file name,mime_type,parent_id
  folder name,parent_id
  permission file_id,role,email
  comment file_id,body
  revision file_id
salesforce Salesforce instance
  account name,industry,owner
  contact email,name,account_id
  opportunity name,amount,stage
  lead email,company,status
  case subject,description,priority
pagerduty PagerDuty -
  incident title,service_id,urgency
  schedule name,time_zone
  service name,escalation_policy_id
  maintenance_window service_id,start_date,end_date
  note incident_id,content
datadog Datadog site
  monitor name,query,message
  dashboard title,widgets
  incident title,severity
  downtime scope,end_date
  notebook name,cells
zendesk Zendesk subdomain
  ticket subject,description,priority,assignee
  user email,name,role
  organization name,domain
  macro title,actions
  view title,conditions
kubernetes Kubernetes cluster,namespace closed
  pod name,image
  deployment name,image,replicas
  service name,port,selector
  config_map name,data
  cron_job name,schedule,image
snowflake Snowflake warehouse,database
  table name,columns
  stage name,url
  task name,schedule,definition
  pipe name,copy_statement
  share name
hubspot HubSpot -
  contact email,name,company
  company name,domain
  deal name,amount,stage
  ticket subject,priority
  note body,contact_id
s3 Amazon_S3 bucket
  object key,content_type
  bucket name,region
  lifecycle_rule prefix,expiration_days
  tag key,value
  multipart_upload key,upload_id
"""


def _parse(table: str) -> tuple[Product, ...]:
    rows: list[tuple[list[str], list[tuple[str, tuple[str, ...]]]]] = []
    for line in table.strip().splitlines():
        words = line.split()
        if line.startswith(" "):
            rows[-1][1].append((words[0], tuple(words[1].split(","))))
        else:
            rows.append((words, []))
    return tuple(
        Product(
            slug=head[0],
            title=head[1].replace("_", " "),
            open_world="closed" not in head[3:],
            scope=() if head[2] == "-" else tuple(head[2].split(",")),
            nouns=tuple(nouns),
        )
        for head, nouns in rows
    )


PRODUCTS = _parse(_TABLE)
